"""REST endpoints of the training app: training runs, snapshots and model comparison."""
from __future__ import annotations

from django.db.models import QuerySet
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError as BadRequest
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inference.models import ModelVersion
from project.api import PagePagination, member_object, member_project, validated
from project.converters import as_id
from review.models import Role, Tag
from training import selectors, services
from training import serializers as s
from training.models import DatasetSnapshot, TrainingRun


class TrainingRunListCreate(generics.ListAPIView):
    serializer_class = s.TrainingRunListSerializer
    pagination_class = PagePagination

    def get_queryset(self) -> QuerySet[TrainingRun]:
        project = member_project(self.request, self.kwargs["project_id"])
        return TrainingRun.objects.filter(project=project).order_by("-created_at", "-id")

    @extend_schema(request=s.TrainingRunCreateSerializer, responses={201: s.TrainingRunSerializer},
                   summary="Fine-tune the active model on all reviewed labels (manager)")
    def post(self, request: Request, project_id: int) -> Response:
        project = member_project(request, project_id, Role.MANAGER)
        params = validated(s.TrainingRunCreateSerializer, request.data)
        run = services.training_run_start(project=project, user=request.user, params=params)
        return Response(s.TrainingRunSerializer(run).data, status=status.HTTP_201_CREATED)


class TrainingRunDetail(APIView):
    @extend_schema(responses=s.TrainingRunSerializer, summary="Progress, loss history and per-epoch holdout mAP")
    def get(self, request: Request, run_id: int) -> Response:
        return Response(s.TrainingRunSerializer(member_object(request, TrainingRun.objects.all(), run_id)).data)


class TrainingRunCancel(APIView):
    @extend_schema(request=None, responses=s.TrainingRunSerializer, summary="Stop a run (manager)")
    def post(self, request: Request, run_id: int) -> Response:
        run = member_object(request, TrainingRun.objects.all(), run_id, Role.MANAGER)
        return Response(s.TrainingRunSerializer(services.training_run_cancel(run=run)).data)


class SnapshotList(generics.ListAPIView):
    serializer_class = s.SnapshotListSerializer
    pagination_class = PagePagination

    def get_queryset(self) -> QuerySet[DatasetSnapshot]:
        project = member_project(self.request, self.kwargs["project_id"])
        return DatasetSnapshot.objects.filter(project=project).order_by("-created_at", "-id")


class SnapshotDetail(APIView):
    @extend_schema(responses=s.SnapshotSerializer)
    def get(self, request: Request, snapshot_id: int) -> Response:
        return Response(s.SnapshotSerializer(member_object(request, DatasetSnapshot.objects.all(), snapshot_id)).data)


class SnapshotDownload(APIView):
    @extend_schema(responses={(200, "application/json"): OpenApiTypes.OBJECT},
                   summary="The frozen labels as COCO JSON (manager)")
    def get(self, request: Request, snapshot_id: int) -> FileResponse:
        snapshot = member_object(request, DatasetSnapshot.objects.all(), snapshot_id, Role.MANAGER)
        return FileResponse(snapshot.file.open("rb"), content_type="application/json", as_attachment=True,
                            filename=f"snapshot-{snapshot.project_id}-{snapshot.content_hash[:12]}.json")


class ModelVersionCompare(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("first", OpenApiTypes.INT, required=True, description="Older version id"),
                    OpenApiParameter("second", OpenApiTypes.INT, required=True, description="Newer version id"),
                    OpenApiParameter("score_threshold", OpenApiTypes.FLOAT,
                                     description="Predictions counted as errors from this score (default: the project's review threshold)"),
                    OpenApiParameter("tag", OpenApiTypes.STR, description="Only the images with this tag (a camera, night)")],
        responses=s.ComparisonSerializer,
        summary="Two versions on the same reviewed holdout images: mAP, per-class AP, images fixed and broken")
    def get(self, request: Request, project_id: int) -> Response:
        project = member_project(request, project_id)
        versions = [self._version(request, project, name) for name in ("first", "second")]
        try:
            threshold = float(request.query_params.get("score_threshold", project.score_threshold))
        except ValueError:
            threshold = -1.0
        if not 0 <= threshold <= 1:
            raise BadRequest({"score_threshold": ["Give a number between 0 and 1."]})
        tag = request.query_params.get("tag") or None
        if tag is not None and not Tag.objects.filter(project=project, name=tag).exists():
            raise BadRequest({"tag": [f"{project.name} has no tag {tag[:60]!r}."]})
        return Response(selectors.model_versions_compare(first=versions[0], second=versions[1],
                                                         score_threshold=threshold, tag=tag))

    @staticmethod
    def _version(request: Request, project, name: str) -> ModelVersion:
        value = request.query_params.get(name, "")
        version = ModelVersion.objects.filter(pk=pk, project=project).first() if (pk := as_id(value)) else None
        if version is None:
            raise BadRequest({name: [f"Give the id of a model version of this project (got {value!r})."]})
        return version


class ModelVersionOperatingPoints(APIView):
    @extend_schema(parameters=[s.OperatingPointsQuerySerializer], responses=s.OperatingPointsSerializer,
                   summary="Which score threshold to deploy at: precision, recall and F1 per threshold on the "
                           "reviewed holdout images, per class and pooled")
    def get(self, request: Request, version_id: int) -> Response:
        version = member_object(request, ModelVersion.objects.all(), version_id)
        query = validated(s.OperatingPointsQuerySerializer, request.query_params)
        return Response(selectors.model_version_operating_points(version=version, **query))
