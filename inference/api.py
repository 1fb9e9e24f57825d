"""REST endpoints of the inference app: model versions, predictions, inference runs."""
from __future__ import annotations

from django.conf import settings
from django.db.models import Exists, F, OuterRef, QuerySet
from django.http import FileResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, pagination, status
from rest_framework.exceptions import NotFound
from rest_framework.exceptions import ValidationError as BadRequest
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inference import selectors, services
from inference.architectures import ARCHITECTURES, coco_weights_found
from inference import serializers as s
from inference.models import (
    BoxOutcome, InferenceRun, ModelExport, ModelVersion, ModelVersionDeletion, OutcomeKind, Prediction, RerankRun,
    SuspectedError, SuspectKind, SuspectStatus,
)
from inference.model_exports import model_export_cancel, model_export_start
from inference.suspects import suspect_dismiss, suspect_rates
from inference.version_deletion import model_version_deletion_cancel, model_version_deletion_start
from project.api import IdFilter, PagePagination, member_object, member_project, query_id, validated
from project.jobs import ACTIVE_STATUSES
from review.access import project_for_member
from review.models import Role


def _versions() -> QuerySet[ModelVersion]:
    deleting = ModelVersionDeletion.objects.filter(model_version=OuterRef("pk"), status__in=ACTIVE_STATUSES)
    return (ModelVersion.objects.select_related("training_run").annotate(being_deleted=Exists(deleting))
            .order_by("-number"))


class ModelVersionListCreate(generics.ListAPIView):
    serializer_class = s.ModelVersionSerializer
    pagination_class = PagePagination
    parser_classes = [MultiPartParser]

    def get_queryset(self) -> QuerySet[ModelVersion]:
        return _versions().filter(project=member_project(self.request, self.kwargs["project_id"]))

    @extend_schema(request={"multipart/form-data": s.ModelVersionUploadSerializer},
                   responses={201: s.ModelVersionSerializer}, summary="Upload base weights (manager)")
    def post(self, request: Request, project_id: int) -> Response:
        project = member_project(request, project_id, Role.MANAGER)
        data = validated(s.ModelVersionUploadSerializer, request.data)
        if data["weights"].size > settings.MAX_WEIGHTS_BYTES:
            raise BadRequest({"weights": [f"The file is {data['weights'].size / 1e6:.0f} MB; the limit is "
                                          f"{settings.MAX_WEIGHTS_BYTES / 1e6:.0f} MB."]})
        version = services.model_version_create(
            project=project, architecture=data["architecture"], weights=data["weights"].read(),
            class_names=data.get("class_names"), user=request.user, note=data["note"], activate=data["activate"])
        return Response(s.ModelVersionSerializer(_versions().get(pk=version.pk)).data, status=status.HTTP_201_CREATED)


class ModelVersionDetail(APIView):
    @extend_schema(responses=s.ModelVersionSerializer, summary="A version with its metrics and lineage")
    def get(self, request: Request, version_id: int) -> Response:
        return Response(s.ModelVersionSerializer(member_object(request, _versions(), version_id)).data)

    @extend_schema(responses={202: s.ModelVersionDeletionSerializer},
                   summary="Delete a version that is not active, with its predictions and weights, in a worker "
                   "(manager)",
                   description="Follow the deletion at the returned `/model-version-deletions/{id}/`; until it ends "
                   "the version cannot be made active, predicted with or exported.")
    def delete(self, request: Request, version_id: int) -> Response:
        version = member_object(request, _versions(), version_id, Role.MANAGER)
        deletion = model_version_deletion_start(version=version, user=request.user)
        return Response(s.ModelVersionDeletionSerializer(deletion).data, status=status.HTTP_202_ACCEPTED,
                        headers={"Location": reverse("api:model_version_deletion_detail", args=[deletion.pk])})


class ModelVersionDeletionList(generics.ListAPIView):
    """The project's model version deletions, newest first."""

    serializer_class = s.ModelVersionDeletionSerializer
    pagination_class = PagePagination

    def get_queryset(self) -> QuerySet[ModelVersionDeletion]:
        project = member_project(self.request, self.kwargs["project_id"])
        return ModelVersionDeletion.objects.filter(project=project).order_by("-created_at", "-id")


class ModelVersionDeletionDetail(APIView):
    @extend_schema(responses=s.ModelVersionDeletionSerializer, summary="A version deletion's status and progress")
    def get(self, request: Request, version_deletion_id: int) -> Response:
        deletion = member_object(request, ModelVersionDeletion.objects.all(), version_deletion_id)
        return Response(s.ModelVersionDeletionSerializer(deletion).data)


class ModelVersionDeletionCancel(APIView):
    @extend_schema(request=None, responses=s.ModelVersionDeletionSerializer,
                   summary="Stop a version deletion: the version stays with the predictions not yet deleted (manager)")
    def post(self, request: Request, version_deletion_id: int) -> Response:
        deletion = member_object(request, ModelVersionDeletion.objects.all(), version_deletion_id, Role.MANAGER)
        return Response(s.ModelVersionDeletionSerializer(model_version_deletion_cancel(deletion=deletion)).data)


class ModelVersionWeights(APIView):
    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
                   summary="The weights as safetensors, with architecture and class names inside (manager)")
    def get(self, request: Request, version_id: int) -> FileResponse:
        version = member_object(request, _versions(), version_id, Role.MANAGER)
        if not version.weights:
            raise NotFound("This version has no weights: its predictions were imported.")
        return FileResponse(version.weights.open("rb"), content_type="application/octet-stream", as_attachment=True,
                            filename=f"project-{version.project_id}-v{version.number}-{version.architecture}.safetensors")


class ModelExportListCreate(generics.ListAPIView):
    """A version's exports (ONNX files a deployment runs without torch), newest first."""

    serializer_class = s.ModelExportSerializer
    pagination_class = PagePagination

    def get_queryset(self) -> QuerySet[ModelExport]:
        version = member_object(self.request, _versions(), self.kwargs["version_id"])
        return ModelExport.objects.filter(model_version=version).order_by("-created_at", "-id")

    @extend_schema(request=s.ModelExportCreateSerializer,
                   responses={202: s.ModelExportSerializer, 200: s.ModelExportSerializer},
                   summary="Export the version as ONNX in a worker, checked against the model (manager)",
                   description="202 with a new export to follow at `/model-exports/{id}/`; 200 with the one made or "
                   "going already for this version and its class names (weights never change). Once it succeeded, "
                   "the file is at `/model-exports/{id}/file/`.")
    def post(self, request: Request, version_id: int) -> Response:
        version = member_object(request, _versions(), version_id, Role.MANAGER)
        data = validated(s.ModelExportCreateSerializer, request.data)
        export, created = model_export_start(version=version, format=data["format"], user=request.user)
        return Response(s.ModelExportSerializer(export).data,
                        status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK,
                        headers={"Location": reverse("api:model_export_detail", args=[export.pk])})


class ModelExportDetail(APIView):
    @extend_schema(responses=s.ModelExportSerializer, summary="An export's status, progress and check")
    def get(self, request: Request, model_export_id: int) -> Response:
        export = member_object(request, ModelExport.objects.all(), model_export_id)
        return Response(s.ModelExportSerializer(export).data)


class ModelExportCancel(APIView):
    @extend_schema(request=None, responses=s.ModelExportSerializer, summary="Stop an export; nothing is kept (manager)")
    def post(self, request: Request, model_export_id: int) -> Response:
        export = member_object(request, ModelExport.objects.all(), model_export_id, Role.MANAGER)
        return Response(s.ModelExportSerializer(model_export_cancel(export=export)).data)


class ModelExportFile(APIView):
    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
                   summary="The exported file: ONNX with the class names and score threshold in its metadata (manager)")
    def get(self, request: Request, model_export_id: int) -> FileResponse:
        export = member_object(request, ModelExport.objects.select_related("model_version"), model_export_id,
                               Role.MANAGER)
        if not export.file or export.status != "succeeded":
            raise NotFound(f"Export {export.pk} has no file to download (status: {export.status}).")
        return FileResponse(export.file.open("rb"), content_type="application/octet-stream", as_attachment=True,
                            filename=f"project-{export.project_id}-v{export.version_number}-"
                                     f"{export.model_version.architecture}.{export.format}")


class ModelVersionPromote(APIView):
    @extend_schema(request=None, responses=s.ModelVersionSerializer,
                   summary="Make this version the active model: promote, or roll back to an older one (manager)")
    def post(self, request: Request, version_id: int) -> Response:
        version = member_object(request, _versions(), version_id, Role.MANAGER)
        services.model_version_activate(version=version)
        return Response(s.ModelVersionSerializer(_versions().get(pk=version.pk)).data)


class ArchitectureList(APIView):
    @extend_schema(responses=s.ArchitectureSerializer(many=True),
                   summary="The detector architectures models can have, and which have COCO weights on this server")
    def get(self, request: Request) -> Response:
        found = coco_weights_found(settings.COCO_WEIGHTS_DIR)
        return Response(s.ArchitectureSerializer([
            {"name": name, "image_size": spec.image_size, "cpu_friendly": spec.cpu_friendly, "coco_weights": name in found}
            for name, spec in ARCHITECTURES.items()], many=True).data)


class ModelVersionFromCoco(APIView):
    @extend_schema(request=s.ModelVersionFromCocoSerializer, responses={201: s.ModelVersionSerializer},
                   summary="Add a version from torchvision's COCO weights (manager)",
                   description="It finds the project's classes that COCO names (any case) straight away, and is "
                   "a better start for a fine-tune than random weights. Its `note` says which classes it knows.")
    def post(self, request: Request, project_id: int) -> Response:
        project = member_project(request, project_id, Role.MANAGER)
        data = validated(s.ModelVersionFromCocoSerializer, request.data)
        version = services.model_version_from_coco(project=project, architecture=data["architecture"],
                                                   user=request.user, activate=data["activate"], classes=data["classes"])
        return Response(s.ModelVersionSerializer(_versions().get(pk=version.pk)).data, status=status.HTTP_201_CREATED)


class ModelVersionRollback(APIView):
    @extend_schema(request=None, responses=s.ModelVersionSerializer,
                   summary="Make the active version's parent active again (manager)")
    def post(self, request: Request, project_id: int) -> Response:
        version = services.model_version_rollback(project=member_project(request, project_id, Role.MANAGER))
        return Response(s.ModelVersionSerializer(_versions().get(pk=version.pk)).data)


class PredictionFilter(filters.FilterSet):
    model_version = IdFilter(help_text="Default: the active model.")
    image = IdFilter()
    label_class = IdFilter()
    min_score = filters.NumberFilter(field_name="score", lookup_expr="gte")

    class Meta:
        model = Prediction
        fields = ["model_version", "image", "label_class"]


class PredictionCursorPagination(pagination.CursorPagination):
    page_size = 500
    page_size_query_param = "page_size"
    max_page_size = 5000
    ordering = ("id",)


class PredictionList(generics.ListAPIView):
    """Predictions of one project, by model version (default: the active one)."""

    serializer_class = s.PredictionSerializer
    pagination_class = PredictionCursorPagination
    filter_backends = [filters.DjangoFilterBackend]
    filterset_class = PredictionFilter

    def get_queryset(self) -> QuerySet[Prediction]:
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular inspecting the view
            return Prediction.objects.none()
        project = member_project(self.request, self.kwargs["project_id"])
        predictions = Prediction.objects.filter(model_version__project=project)
        if "model_version" not in self.request.query_params:
            predictions = predictions.filter(model_version__is_active=True)
        return predictions


class InferenceRunListCreate(generics.ListAPIView):
    serializer_class = s.InferenceRunSerializer
    pagination_class = PagePagination

    def get_queryset(self) -> QuerySet[InferenceRun]:
        project = member_project(self.request, self.kwargs["project_id"])
        return InferenceRun.objects.filter(project=project).order_by("-created_at", "-id")

    @extend_schema(request=s.InferenceRunCreateSerializer, responses={201: s.InferenceRunSerializer},
                   summary="Predict images with a model version (reviewer)")
    def post(self, request: Request, project_id: int) -> Response:
        project = member_project(request, project_id, Role.REVIEWER)
        data = validated(s.InferenceRunCreateSerializer, request.data)
        version = None
        if data["model_version"] is not None:
            version = ModelVersion.objects.filter(pk=data["model_version"], project=project).first()
            if version is None:
                raise BadRequest({"model_version": [f"Model version {data['model_version']} is not a version of "
                                                    "this project."]})
        run = services.inference_run_create(project=project, user=request.user, scope=data["scope"],
                                            model_version=version, image_ids=data["image_ids"])
        return Response(s.InferenceRunSerializer(run).data, status=status.HTTP_201_CREATED)


class InferenceRunDetail(APIView):
    @extend_schema(responses=s.InferenceRunSerializer, summary="A run's status and progress")
    def get(self, request: Request, run_id: int) -> Response:
        return Response(s.InferenceRunSerializer(member_object(request, InferenceRun.objects.all(), run_id)).data)


class InferenceRunCancel(APIView):
    @extend_schema(request=None, responses=s.InferenceRunSerializer, summary="Stop a run (reviewer)")
    def post(self, request: Request, run_id: int) -> Response:
        run = member_object(request, InferenceRun.objects.all(), run_id, Role.REVIEWER)
        return Response(s.InferenceRunSerializer(services.inference_run_cancel(run=run)).data)


class RerankRunListCreate(generics.ListAPIView):
    """Reranks: the queue ranked and the reviewed images judged again at the project's review threshold."""

    serializer_class = s.RerankRunSerializer
    pagination_class = PagePagination

    def get_queryset(self) -> QuerySet[RerankRun]:
        project = member_project(self.request, self.kwargs["project_id"])
        return RerankRun.objects.filter(project=project).order_by("-created_at", "-id")

    @extend_schema(request=None, responses={201: s.RerankRunSerializer},
                   summary="Rank the queue again at the review threshold (manager)")
    def post(self, request: Request, project_id: int) -> Response:
        project = member_project(request, project_id, Role.MANAGER)
        run = services.rerank_run_create(project=project, user=request.user)
        return Response(s.RerankRunSerializer(run).data, status=status.HTTP_201_CREATED)


class RerankRunDetail(APIView):
    @extend_schema(responses=s.RerankRunSerializer, summary="A rerank's status and progress")
    def get(self, request: Request, run_id: int) -> Response:
        return Response(s.RerankRunSerializer(member_object(request, RerankRun.objects.all(), run_id)).data)


class RerankRunCancel(APIView):
    @extend_schema(request=None, responses=s.RerankRunSerializer,
                   summary="Stop a rerank; the images it has not reached keep the old threshold's ranking (manager)")
    def post(self, request: Request, run_id: int) -> Response:
        run = member_object(request, RerankRun.objects.all(), run_id, Role.MANAGER)
        return Response(s.RerankRunSerializer(services.rerank_run_cancel(run=run)).data)


class BoxOutcomeList(generics.ListAPIView):
    """Error review: how each confident box of this version fared on reviewed images, most confident errors first."""

    serializer_class = s.BoxOutcomeSerializer
    pagination_class = PagePagination

    def get_queryset(self) -> QuerySet[BoxOutcome]:
        if getattr(self, "swagger_fake_view", False):
            return BoxOutcome.objects.none()
        version = member_object(self.request, _versions(), self.kwargs["version_id"])
        kind = self.request.query_params.get("kind") or None
        if kind is not None and kind not in OutcomeKind.values:
            raise BadRequest({"kind": [f"Choose one of {', '.join(OutcomeKind.values)}, or leave it out for every "
                                       "kind of error."]})
        return selectors.box_outcomes(version=version, kind=kind,
                                      label_class_id=query_id(self.request, "label_class"),
                                      tag=self.request.query_params.get("tag") or None)

    @extend_schema(parameters=[
        OpenApiParameter("kind", OpenApiTypes.STR, enum=OutcomeKind.values,
                         description="Default: every kind of error (fp, missed, wrong_class, poor_localisation)"),
        OpenApiParameter("label_class", OpenApiTypes.INT),
        OpenApiParameter("tag", OpenApiTypes.STR, description="Only on images with this tag (a camera, night)")])
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)


class BoxOutcomeCounts(APIView):
    @extend_schema(responses=s.BoxOutcomeCountsSerializer, summary="Error counts by kind, overall and per class")
    def get(self, request: Request, version_id: int) -> Response:
        version = member_object(request, _versions(), version_id)
        return Response(selectors.box_outcome_counts(version=version))


class SuspectedErrorList(generics.ListAPIView):
    """The second-look queue: reviewed images whose labels the newest model confidently disputes (reviewer)."""

    serializer_class = s.SuspectedErrorSerializer
    pagination_class = PagePagination

    def get_queryset(self) -> QuerySet[SuspectedError]:
        if getattr(self, "swagger_fake_view", False):
            return SuspectedError.objects.none()
        project = member_project(self.request, self.kwargs["project_id"], Role.REVIEWER)
        wanted = {"kind": SuspectKind.values, "status": SuspectStatus.values}
        filters_ = {}
        for name, allowed in wanted.items():
            value = self.request.query_params.get(name)
            if value is not None and value not in allowed:
                raise BadRequest({name: [f"Choose one of {', '.join(allowed)}."]})
            if value:
                filters_[name] = value
        filters_.setdefault("status", SuspectStatus.OPEN)
        return SuspectedError.objects.filter(image__project=project, **filters_).order_by(
            F("score").desc(nulls_last=True), "id")

    @extend_schema(parameters=[OpenApiParameter("kind", OpenApiTypes.STR, enum=SuspectKind.values),
                               OpenApiParameter("status", OpenApiTypes.STR, enum=SuspectStatus.values,
                                                description="Default: open")])
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)


class SuspectedErrorRates(APIView):
    @extend_schema(responses=s.SuspectRateSerializer(many=True),
                   summary="Per kind of suspect: open, confirmed, dismissed and the confirmation rate (reviewer)")
    def get(self, request: Request, project_id: int) -> Response:
        project = member_project(request, project_id, Role.REVIEWER)
        return Response(suspect_rates(project_id=project.pk))


class SuspectedErrorDismiss(APIView):
    @extend_schema(request=None, responses=s.SuspectedErrorSerializer,
                   summary="The labels are right: dismiss this suspect (reviewer)")
    def post(self, request: Request, suspect_id: int) -> Response:
        suspect = get_object_or_404(SuspectedError.objects.select_related("image"), pk=suspect_id)
        project_for_member(request.user, suspect.image.project_id, role=Role.REVIEWER)
        return Response(s.SuspectedErrorSerializer(suspect_dismiss(suspect=suspect, user=request.user)).data)
