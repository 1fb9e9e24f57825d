"""REST endpoints of the review app: projects, members, label classes, images and their boxes.

Each class does one thing: check the role, validate with a small serializer, call one service,
serialize the answer. Roles: reads need membership, writes say which role they need.
"""
from __future__ import annotations

import posixpath

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import F, FloatField, OuterRef, QuerySet, Subquery
from django.http import FileResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.exceptions import ValidationError as BadRequest
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from datasets.formats import is_video_name
from inference.models import ModelVersion, Prediction
from inference.services import (
    active_model_version, active_model_version_id, box_outcomes_refresh_later, inference_run_after_upload,
    project_settings_update,
)
from project.api import PagePagination, conflict, member_object, member_project, query_id, validated
from review import serializers as s
from review import services
from review.bulk_actions import bulk_apply, member_by_id, required_role, selected_images
from review.activity import DEFAULT_WINDOW, WINDOWS, team_activity, window_start
from review.archives import ArchiveRejected, SafeArchive
from review.models import (
    Annotation, Comment, Image, LabelClass, Membership, Project, ProjectDeletion, ReviewStatus, Role, Tag,
)
from review.project_deletion import deletions_visible_to, project_deletion_cancel, project_deletion_start
from review.media import image_file_response, image_thumbnail_response, images_for_media
from review.queue import ImageCursorPagination, ImageFilter, images_with_counts
from review.selectors import image_box_versions, label_class_counts, project_list_for_user
from review.tags import image_tags_add, tag_delete, tag_names_clean, tag_rename, tags_with_counts
from inference.suspects import has_open_suspects, suspects_resolve
from training.services import training_after_review

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


# --- Projects -----------------------------------------------------------------------------------

def _projects_with_details(user) -> QuerySet[Project]:
    """Projects with counts, the caller's role and the active model in one query."""
    active = ModelVersion.objects.filter(project=OuterRef("pk"), is_active=True)
    return project_list_for_user(user).annotate(
        role=Subquery(Membership.objects.filter(project=OuterRef("pk"), user=user).values("role")[:1]),
        active_model_id=Subquery(active.values("id")[:1]),
        active_model_number=Subquery(active.values("number")[:1]),
        active_model_architecture=Subquery(active.values("architecture")[:1]),
        active_model_map=Subquery(active.values("metrics__map")[:1], output_field=FloatField()),
    )


class ProjectListCreate(APIView):
    @extend_schema(responses=s.ProjectSerializer(many=True), summary="Projects you are a member of")
    def get(self, request: Request) -> Response:
        return Response(s.ProjectSerializer(_projects_with_details(request.user), many=True).data)

    @extend_schema(request=s.ProjectCreateSerializer, responses={201: s.ProjectSerializer},
                   summary="Create a project; you become its manager")
    def post(self, request: Request) -> Response:
        data = validated(s.ProjectCreateSerializer, request.data)
        project = services.project_create(owner=request.user, **data)
        return Response(s.ProjectSerializer(_projects_with_details(request.user).get(pk=project.pk)).data,
                        status=status.HTTP_201_CREATED)


class ProjectDetail(APIView):
    @extend_schema(responses=s.ProjectSerializer)
    def get(self, request: Request, project_id: int) -> Response:
        member_project(request, project_id)
        return Response(s.ProjectSerializer(_projects_with_details(request.user).get(pk=project_id)).data)

    @extend_schema(request=s.ProjectUpdateSerializer, responses=s.ProjectSerializer,
                   summary="Change settings (manager)")
    def patch(self, request: Request, project_id: int) -> Response:
        project = member_project(request, project_id, Role.MANAGER)
        project_settings_update(project=project, user=request.user,
                                **validated(s.ProjectUpdateSerializer, request.data))
        return Response(s.ProjectSerializer(_projects_with_details(request.user).get(pk=project_id)).data)

    @extend_schema(responses={202: s.ProjectDeletionSerializer},
                   summary="Delete the project with all its images and models, in a worker (manager)",
                   description="The project is gone for everyone at once; follow the deletion at the returned "
                   "`/project-deletions/{id}/` and cancel it there while it runs.")
    def delete(self, request: Request, project_id: int) -> Response:
        deletion = project_deletion_start(project=member_project(request, project_id, Role.MANAGER),
                                          user=request.user)
        return Response(s.ProjectDeletionSerializer(deletion).data, status=status.HTTP_202_ACCEPTED,
                        headers={"Location": reverse("api:project_deletion_detail", args=[deletion.pk])})


class ProjectDeletionList(generics.ListAPIView):
    """Deletions you asked for, and those of projects you manage, newest first."""

    serializer_class = s.ProjectDeletionSerializer
    pagination_class = PagePagination

    def get_queryset(self) -> QuerySet[ProjectDeletion]:
        return deletions_visible_to(self.request.user).order_by("-created_at", "-id")


class ProjectDeletionDetail(APIView):
    @extend_schema(responses=s.ProjectDeletionSerializer, summary="A project deletion's status and progress")
    def get(self, request: Request, deletion_id: int) -> Response:
        deletion = get_object_or_404(deletions_visible_to(request.user), pk=deletion_id)
        return Response(s.ProjectDeletionSerializer(deletion).data)


class ProjectDeletionCancel(APIView):
    @extend_schema(request=None, responses=s.ProjectDeletionSerializer,
                   summary="Stop a deletion: the project comes back with the images not yet deleted")
    def post(self, request: Request, deletion_id: int) -> Response:
        deletion = get_object_or_404(deletions_visible_to(request.user), pk=deletion_id)
        return Response(s.ProjectDeletionSerializer(project_deletion_cancel(deletion=deletion)).data)


# --- Members ------------------------------------------------------------------------------------

class MemberListCreate(APIView):
    @extend_schema(responses=s.MemberSerializer(many=True), summary="Members and their roles (manager)")
    def get(self, request: Request, project_id: int) -> Response:
        project = member_project(request, project_id, Role.MANAGER)
        members = Membership.objects.filter(project=project).select_related("user").order_by("user__username")
        return Response(s.MemberSerializer(members, many=True).data)

    @extend_schema(request=s.MemberAddSerializer, responses={201: s.MemberSerializer},
                   summary="Add a user by username, or change their role (manager)")
    def post(self, request: Request, project_id: int) -> Response:
        project = member_project(request, project_id, Role.MANAGER)
        data = validated(s.MemberAddSerializer, request.data)
        membership = services.membership_set(project=project, user=data["username"], role=data["role"])
        return Response(s.MemberSerializer(membership).data, status=status.HTTP_201_CREATED)


class MemberDetail(APIView):
    @extend_schema(request=s.MemberRoleSerializer, responses=s.MemberSerializer, summary="Change a role (manager)")
    def patch(self, request: Request, project_id: int, user_id: int) -> Response:
        project = member_project(request, project_id, Role.MANAGER)
        user = _member_user(project, user_id)
        data = validated(s.MemberRoleSerializer, request.data)
        return Response(s.MemberSerializer(services.membership_set(project=project, user=user, **data)).data)

    @extend_schema(responses={204: None}, summary="Remove a member (manager)")
    def delete(self, request: Request, project_id: int, user_id: int) -> Response:
        project = member_project(request, project_id, Role.MANAGER)
        services.membership_remove(project=project, user=_member_user(project, user_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


def _member_user(project: Project, user_id: int):
    return get_object_or_404(get_user_model(), pk=user_id, memberships__project=project)


# --- Label classes ------------------------------------------------------------------------------

class LabelClassListCreate(APIView):
    @extend_schema(responses=s.LabelClassSerializer(many=True))
    def get(self, request: Request, project_id: int) -> Response:
        project = member_project(request, project_id)
        return Response(s.LabelClassSerializer(project.label_classes.order_by("index"), many=True).data)

    @extend_schema(request=s.LabelClassSerializer, responses={201: s.LabelClassSerializer},
                   summary="Add a class after the last one (manager)")
    def post(self, request: Request, project_id: int) -> Response:
        project = member_project(request, project_id, Role.MANAGER)
        data = validated(s.LabelClassSerializer, request.data)
        label_class = services.label_class_create(project=project, name=data["name"], colour=data.get("colour"))
        return Response(s.LabelClassSerializer(label_class).data, status=status.HTTP_201_CREATED)


class LabelClassCounts(APIView):
    @extend_schema(responses=s.LabelClassCountsSerializer(many=True),
                   summary="Each class's human boxes on reviewed images, training and held out",
                   description="What the next fine-tune learns from and is judged on, class by class. A class "
                               "with no held-out box is not judged (`judged`: false): mAP leaves it out.")
    def get(self, request: Request, project_id: int) -> Response:
        project = member_project(request, project_id)
        return Response(s.LabelClassCountsSerializer(label_class_counts(project=project), many=True).data)


class LabelClassDetail(APIView):
    @extend_schema(request=s.LabelClassUpdateSerializer, responses=s.LabelClassSerializer,
                   summary="Rename or recolour a class (manager)")
    def patch(self, request: Request, class_id: int) -> Response:
        label_class = member_object(request, LabelClass.objects.all(), class_id, Role.MANAGER)
        data = validated(s.LabelClassUpdateSerializer, request.data)
        return Response(s.LabelClassSerializer(services.label_class_update(label_class=label_class, **data)).data)

    @extend_schema(responses={204: None}, summary="Delete a class no human box uses (manager)")
    def delete(self, request: Request, class_id: int) -> Response:
        label_class = member_object(request, LabelClass.objects.all(), class_id, Role.MANAGER)
        services.label_class_delete(label_class=label_class)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TagList(APIView):
    @extend_schema(responses=s.TagSerializer(many=True), summary="The project's tags, each with its image count")
    def get(self, request: Request, project_id: int) -> Response:
        return Response(s.TagSerializer(tags_with_counts(member_project(request, project_id)), many=True).data)


class TagDetail(APIView):
    @extend_schema(request=s.TagRenameSerializer, responses=s.TagSerializer,
                   summary="Rename a tag; to another tag's name, the two become one (manager)")
    def patch(self, request: Request, tag_id: int) -> Response:
        tag = member_object(request, Tag.objects.select_related("project"), tag_id, Role.MANAGER)
        data = validated(s.TagRenameSerializer, request.data)
        now = tag_rename(tag=tag, name=data["name"])
        return Response(s.TagSerializer(tags_with_counts(tag.project).get(pk=now.pk)).data)

    @extend_schema(responses={204: None}, summary="Take a tag off every image (manager)")
    def delete(self, request: Request, tag_id: int) -> Response:
        tag_delete(tag=member_object(request, Tag.objects.all(), tag_id, Role.MANAGER))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Images -------------------------------------------------------------------------------------

class ImageListUpload(generics.ListAPIView):
    """The review queue. Order with `ordering`: priority (default), uncertainty, newest, oldest."""

    serializer_class = s.ImageSerializer
    pagination_class = ImageCursorPagination
    filter_backends = [filters.DjangoFilterBackend]
    filterset_class = ImageFilter
    parser_classes = [MultiPartParser]

    def get_queryset(self) -> QuerySet[Image]:
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular inspecting the view
            return Image.objects.none()
        project = member_project(self.request, self.kwargs["project_id"])
        return images_with_counts(Image.objects.filter(project=project), active_model_version(project))

    @extend_schema(parameters=[OpenApiParameter("ordering", OpenApiTypes.STR,
                                                enum=list(ImageCursorPagination.orderings))])
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(request={"multipart/form-data": s.UploadSerializer}, responses={201: s.UploadReportSerializer},
                   summary="Upload images (annotator); all or nothing unless partial=true")
    def post(self, request: Request, project_id: int) -> Response:
        project = member_project(request, project_id, Role.ANNOTATOR)
        data = validated(s.UploadSerializer, request.data)
        tags = tag_names_clean(data["tags"])  # a bad name refuses the upload before anything is stored
        files = [services.UploadFile(name=upload.name, read=upload.read) for upload in data["files"]]
        report = services.images_create_many(project=project, files=files, partial=data["partial"])
        return _upload_response(request, project, report, tags)


class ImageBulkAction(APIView):
    @extend_schema(request=s.BulkActionSerializer, responses=s.BulkResultSerializer,
                   summary="Predict, assign, approve, send back, tag, untag, export or delete many images at once",
                   description="The images by id, or every image matching the queue's filters (at most "
                               "10,000). Ids outside the project, unknown filters or too many images: 400, "
                               "nothing changes. Assign applies to unreviewed images, approve to reviewed ones, "
                               "send_back to reviewed and approved ones, export to reviewed and approved ones; "
                               "the others are counted in `skipped`.")
    def post(self, request: Request, project_id: int) -> Response:
        project = member_project(request, project_id, Role.REVIEWER)  # what every action needs, at least
        data = validated(s.BulkActionSerializer, request.data)
        project = member_project(request, project_id, required_role(data["action"]))
        images = selected_images(project, image_ids=data.get("images"), filters=data.get("filter"))
        result = bulk_apply(project=project, user=request.user, action=data["action"], images=images,
                            comment=data["comment"], assignee=member_by_id(project, data.get("assignee")),
                            export_format=data["format"], tags=data["tags"])
        return Response(s.BulkResultSerializer(result).data)


class ImageZipUpload(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(request={"multipart/form-data": s.ZipUploadSerializer}, responses={201: s.UploadReportSerializer},
                   summary="Upload a zip of images (annotator); all or nothing unless partial=true")
    def post(self, request: Request, project_id: int) -> Response:
        project = member_project(request, project_id, Role.ANNOTATOR)
        data = validated(s.ZipUploadSerializer, request.data)
        tags = tag_names_clean(data["tags"])
        try:
            with SafeArchive(data["archive"], max_entries=settings.MAX_ARCHIVE_ENTRIES,
                             max_total_bytes=settings.MAX_ARCHIVE_BYTES) as archive:
                images, ignored = [], []
                for entry in archive:
                    if posixpath.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
                        images.append(entry)
                    else:
                        ignored.append((entry.name, "a video: import the zip (POST .../imports/) to take its frames"
                                        if is_video_name(entry.name) else "not an image file"))
                files = [services.UploadFile(name=entry.name, read=lambda entry=entry: archive.read(entry))
                         for entry in images]
                report = services.images_create_many(project=project, files=files, partial=data["partial"])
        except ArchiveRejected as exc:
            raise BadRequest({"archive": [str(exc)]}) from None
        report.ignored = ignored
        return _upload_response(request, project, report, tags)


def _upload_response(request: Request, project: Project, report: services.UploadReport,
                     tags: list[str]) -> Response:
    if report.committed:
        image_tags_add(project=project, images=Image.objects.filter(pk__in=[i.pk for i in report.added]), names=tags)
    run = inference_run_after_upload(project=project, image_ids=[i.pk for i in report.added], user=request.user)
    body = {
        "committed": report.committed,
        "added": [{"id": image.pk, "name": image.original_name} for image in report.added],
        "duplicates": [{"name": name, "existing_id": image.pk} for name, image in report.duplicates],
        "rejected": [{"name": name, "error": error} for name, error in report.rejected],
        "ignored": [{"name": name, "reason": reason} for name, reason in report.ignored],
        "inference_run": run.pk if run else None,
    }
    if not report.committed:
        count = len(report.rejected)
        body["detail"] = (f"{count} file{'s were' if count != 1 else ' was'} refused, so nothing was stored; "
                          "fix them or send partial=true to keep the valid ones.")
        return Response(body, status=status.HTTP_400_BAD_REQUEST)
    return Response(body, status=status.HTTP_201_CREATED if report.added else status.HTTP_200_OK)


# One serializer for every image detail: DRF builds a ModelSerializer's fields afresh for each new
# instance (over a millisecond each, nested ones included), and the editor's save answers with this.
_IMAGE_DETAIL = s.ImageDetailSerializer()


def image_detail_data(image: Image, *, model_version_id: int | None, predictions: list | None = None,
                      boxes: list | None = None) -> dict:
    """The editor's view of one image: human boxes and the predictions of one model version.

    `boxes`: the caller has just written `image` and these boxes (a save), so neither is read again.
    `predictions`: the rows of `prediction_rows(image, model_version_id)` when the caller has them.
    Counts come from the rows fetched anyway (corrections: the image's own), not from the queue's correlated
    subqueries: for a single image those cost more to compile than to run. Boxes and predictions
    are read as plain rows, not model objects (half the time for 50 boxes).
    """
    if boxes is None:
        image = Image.objects.select_related("reviewed_by", "held_by", "assigned_to").get(pk=image.pk)
        # The same fields as the rows a save returns, so the serializer takes either.
        boxes = list(Annotation.objects.filter(image=image).order_by("id").values_list(
            *services.SavedBox._fields, named=True))
    image.shown_model_version_id = model_version_id
    image.shown_predictions = predictions if predictions is not None else prediction_rows(image, model_version_id)
    image.prediction_count = len(image.shown_predictions)
    image.shown_boxes = boxes
    image.box_count = len(image.shown_boxes)
    return _IMAGE_DETAIL.to_representation(image)


def prediction_rows(image: Image, model_version_id: int | None) -> list:
    """The predictions of one version on one image, best first, as rows named like Prediction's fields."""
    if model_version_id is None:
        return []
    return list(Prediction.objects.filter(image=image, model_version_id=model_version_id).order_by("-score", "id")
                .values_list("id", "label_class_id", "x", "y", "w", "h", "score", named=True))


def _shown_version_id(image: Image, version_id: int | None) -> int | None:
    """The version whose predictions to show: the one asked for if it is this project's, else the active one."""
    if version_id is None:
        return active_model_version_id(image.project_id)
    if not ModelVersion.objects.filter(pk=version_id, project_id=image.project_id).exists():
        raise BadRequest({"model_version": [f"Model version {version_id} is not a version of this project."]})
    return version_id


def _shown_predictions(image: Image, version_id: int | None) -> tuple[int | None, list]:
    """The version shown to the reviewer and its predictions on this image. A version that has
    predictions on this image is this project's: the check is then a query the save need not make."""
    if version_id is None:
        version_id = _shown_version_id(image, None)
        return version_id, prediction_rows(image, version_id)
    predictions = prediction_rows(image, version_id)
    if not predictions:
        _shown_version_id(image, version_id)  # 400 unless it is a version of this project
    return version_id, predictions


class ImageFile(APIView):
    """The pixels, for scripts: `file_url` of an image. (The browser pages use the same stream.)"""

    @extend_schema(responses={(200, "image/*"): OpenApiTypes.BINARY},
                   summary="The image as stored: upright, metadata stripped (members)")
    def get(self, request: Request, image_id: int) -> FileResponse:
        return image_file_response(member_object(request, images_for_media(), image_id))


class ImageThumbnail(APIView):
    """A small JPEG of an image (its longer side 384 pixels; an image that small is its own), made on the
    first request: `thumbnail_url` of an image, for a grid of many."""

    @extend_schema(responses={(200, "image/*"): OpenApiTypes.BINARY},
                   summary="A small JPEG of the image, for a page of many (members)")
    def get(self, request: Request, image_id: int) -> FileResponse:
        return image_thumbnail_response(member_object(request, images_for_media(), image_id))


class ImageDetail(APIView):
    @extend_schema(parameters=[OpenApiParameter("model_version", OpenApiTypes.INT,
                                                description="Whose predictions to show; default: the active model")],
                   responses=s.ImageDetailSerializer)
    def get(self, request: Request, image_id: int) -> Response:
        image = member_object(request, Image.objects.select_related("project"), image_id)
        return Response(image_detail_data(image, model_version_id=_shown_version_id(
            image, query_id(request, "model_version"))))

    @extend_schema(responses={204: None}, summary="Delete an image with its boxes and predictions (manager)")
    def delete(self, request: Request, image_id: int) -> Response:
        services.image_delete(image=member_object(request, Image.objects.all(), image_id, Role.MANAGER))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ImageBoxesSave(APIView):
    @extend_schema(
        request=s.BoxesSaveSerializer,
        responses={200: s.ImageDetailSerializer,
                   409: inline_serializer("StaleImage", {"detail": serializers.CharField(),
                                                         "current": s.ImageDetailSerializer()})},
        summary="Replace all human boxes of an image (annotator)",
        description="Send every box with the image version you loaded. If someone saved since, the answer is "
                    "409 with their boxes in `current` and nothing is changed.",
    )
    def put(self, request: Request, image_id: int) -> Response:
        image = member_object(request, Image.objects.select_related("project"), image_id, Role.ANNOTATOR)
        data = validated(s.BoxesSaveSerializer, request.data)
        boxes = [services.BoxIn(label_class_id=b["label_class"], x=b["x"], y=b["y"], w=b["w"], h=b["h"],
                                source_prediction_id=b["source_prediction"]) for b in data["boxes"]]
        version_id, predictions = _shown_predictions(image, data["model_version"])
        _check_source_predictions(image, boxes, known={p.id for p in predictions})
        shown = [services.BoxShown(prediction_id=p.id, label_class_id=p.label_class_id, x=p.x, y=p.y, w=p.w, h=p.h)
                 for p in predictions if p.score >= data["score_threshold"]]
        second_look = has_open_suspects(image)
        before = _box_set(image) if second_look else None
        try:
            image = services.image_boxes_save(image=image, user=request.user, boxes=boxes, version=data["version"],
                                              shown=shown, model_version_id=version_id,
                                              seconds_spent=data["seconds_spent"])
        except services.StaleImage as exc:
            return conflict(str(exc), image_detail_data(exc.image, model_version_id=version_id, predictions=predictions))
        # Error review: a second look that changed the boxes confirms the suspicion, one that did not dismisses it;
        # then judge every model again on the new truth (in a worker, after this answer).
        if second_look:
            suspects_resolve(image=image, user=request.user, labels_changed=_box_set(image) != before)
        box_outcomes_refresh_later(image_ids=[image.pk])
        training_after_review(project=image.project)
        return Response(image_detail_data(image, model_version_id=version_id, predictions=predictions,
                                          boxes=image.saved_boxes))


def _box_set(image: Image) -> list[tuple]:
    return sorted(Annotation.objects.filter(image=image).values_list("label_class_id", "x", "y", "w", "h"))


def _check_source_predictions(image: Image, boxes: list[services.BoxIn], *, known: set[int]) -> None:
    """Every source_prediction must be a prediction of this image. `known`: ids already read (the shown
    version's, which the editor's boxes name); only the others are looked up."""
    named = {box.source_prediction_id for box in boxes if box.source_prediction_id is not None} - known
    if not named:
        return
    found = set(Prediction.objects.filter(image=image, pk__in=named).values_list("pk", flat=True))
    if unknown := sorted(named - found):
        raise BadRequest({"boxes": [f"source_prediction {unknown[0]} is not a prediction of this image."]})


class NextImage(APIView):
    @extend_schema(request=s.NextImageSerializer, responses={200: s.ImageDetailSerializer, 204: None},
                   summary="Take the next image to review and hold it for you (annotator; approval pass: reviewer)",
                   description="The image is held for you for REVIEW_HOLD_SECONDS (10 minutes by default): other "
                               "callers get other images meanwhile. Your previous hold in the project is released; "
                               "saving or approving releases this one. 204 when nothing is left that is not "
                               "skipped or held by someone else.")
    def post(self, request: Request, project_id: int) -> Response:
        project = member_project(request, project_id)
        data = validated(s.NextImageSerializer, request.data)
        if data["status"] == ReviewStatus.REVIEWED:
            project = member_project(request, project_id, Role.REVIEWER)
        image = services.image_next_for_review(project=project, user=request.user, status=data["status"],
                                               exclude=data["skip"])
        if image is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(image_detail_data(image, model_version_id=active_model_version_id(project.pk)))


class ImageStatusSet(APIView):
    @extend_schema(request=s.ImageStatusSerializer,
                   responses={200: s.ImageDetailSerializer,
                              409: inline_serializer("StaleImageStatus", {"detail": serializers.CharField(),
                                                                          "current": s.ImageDetailSerializer()})},
                   summary="Approve a reviewed image or send it back to the queue (reviewer)")
    def post(self, request: Request, image_id: int) -> Response:
        image = member_object(request, Image.objects.select_related("project"), image_id, Role.REVIEWER)
        data = validated(s.ImageStatusSerializer, request.data)
        try:
            image = services.image_status_set(image=image, status=data["status"], user=request.user,
                                              version=data.get("version"), comment=data["comment"])
        except services.StaleImage as exc:
            return conflict(str(exc), image_detail_data(exc.image, model_version_id=_shown_version_id(exc.image, None)))
        box_outcomes_refresh_later(image_ids=[image.pk])  # an image sent back to the queue has no truth to judge by
        return Response(image_detail_data(image, model_version_id=_shown_version_id(image, None)))


class ImageComments(APIView):
    @extend_schema(responses=s.CommentSerializer(many=True), summary="The comments on an image, oldest first")
    def get(self, request: Request, image_id: int) -> Response:
        image = member_object(request, Image.objects.all(), image_id)
        comments = image.comments.select_related("author").prefetch_related("mentions__user")
        return Response(s.CommentSerializer(comments, many=True).data)

    @extend_schema(request=s.CommentSerializer, responses={201: s.CommentSerializer},
                   summary="Comment on an image (annotator)")
    def post(self, request: Request, image_id: int) -> Response:
        image = member_object(request, Image.objects.all(), image_id, Role.ANNOTATOR)
        data = validated(s.CommentSerializer, request.data)
        comment = services.comment_add(image=image, author=request.user, text=data["text"])
        return Response(s.CommentSerializer(comment).data, status=status.HTTP_201_CREATED)


class TeamActivity(APIView):
    @extend_schema(parameters=[OpenApiParameter("days", OpenApiTypes.STR, enum=list(WINDOWS),
                                                description=f"The window; default {DEFAULT_WINDOW}")],
                   responses=s.MemberActivitySerializer(many=True),
                   summary="What each member did: saves, time, corrections, approvals and send-backs (reviewer)")
    def get(self, request: Request, project_id: int) -> Response:
        project = member_project(request, project_id, Role.REVIEWER)
        since = window_start(request.query_params.get("days", DEFAULT_WINDOW))
        return Response(s.MemberActivitySerializer(team_activity(project=project, since=since), many=True).data)


class ImageBoxHistory(APIView):
    @extend_schema(responses=s.BoxVersionSerializer(many=True),
                   summary="Earlier versions of an image's boxes, newest first",
                   description="What each save replaced. To bring one back, send its boxes to the box save "
                               "with the image's current version. A box's source_prediction is null when that "
                               "prediction no longer exists; boxes of a deleted class are counted in left_out.")
    def get(self, request: Request, image_id: int) -> Response:
        image = member_object(request, Image.objects.all(), image_id)
        versions = image_box_versions(image=image)
        # Here, not in the selector: review's selectors never read the inference app's tables.
        named = {box["source_prediction"] for version in versions for box in version.boxes} - {None}
        existing = set(Prediction.objects.filter(image=image, pk__in=named).values_list("pk", flat=True))
        for version in versions:
            for box in version.boxes:
                if box["source_prediction"] not in existing:
                    box["source_prediction"] = None
        return Response(s.BoxVersionSerializer(versions, many=True).data)


class CommentDetail(APIView):
    @extend_schema(request=s.CommentSerializer, responses=s.CommentSerializer,
                   summary="Change a comment's text (its author only)")
    def patch(self, request: Request, comment_id: int) -> Response:
        comment = member_object(request, Comment.objects.select_related("author")
                                .annotate(project_id=F("image__project_id")), comment_id)
        if comment.author_id != request.user.pk:  # nobody puts words in another member's mouth, managers included
            raise PermissionDenied("Only its author may change a comment.")
        data = validated(s.CommentSerializer, request.data)
        return Response(s.CommentSerializer(services.comment_edit(comment=comment, text=data["text"])).data)

    @extend_schema(responses={204: None}, summary="Delete a comment (its author, or a manager)")
    def delete(self, request: Request, comment_id: int) -> Response:
        comment = member_object(request, Comment.objects.annotate(project_id=F("image__project_id")), comment_id)
        if comment.author_id != request.user.pk and comment.requester_role != Role.MANAGER:
            raise PermissionDenied("Only its author or a manager may delete a comment.")
        services.comment_delete(comment=comment)
        return Response(status=status.HTTP_204_NO_CONTENT)
