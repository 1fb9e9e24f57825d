"""REST endpoints of imports and exports (manager): start a job, follow it, cancel it, download the zip."""
from __future__ import annotations

from django.db.models import QuerySet
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import NotFound
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from datasets import services, watches
from datasets import serializers as s
from datasets.exports import ExportSpec
from datasets.models import BucketWatch, DatasetExport, DatasetImport
from inference.models import ModelVersion
from project.api import PagePagination, member_object, member_project, validated
from review.models import Role
from training.models import DatasetSnapshot


class ImportListCreate(generics.ListAPIView):
    serializer_class = s.DatasetImportSerializer
    pagination_class = PagePagination
    parser_classes = [MultiPartParser, JSONParser]

    def get_queryset(self) -> QuerySet[DatasetImport]:
        project = member_project(self.request, self.kwargs["project_id"], Role.MANAGER)
        return DatasetImport.objects.filter(project=project).order_by("-created_at", "-id")

    @extend_schema(request={"multipart/form-data": s.ImportCreateSerializer, "application/json": s.ImportCreateSerializer},
                   responses={202: s.DatasetImportSerializer},
                   summary="Import a zip (images with COCO, YOLO or VOC labels), a COCO file, or the objects under "
                           "a bucket prefix (manager)")
    def post(self, request: Request, project_id: int) -> Response:
        project = member_project(request, project_id, Role.MANAGER)
        data = validated(s.ImportCreateSerializer, request.data)
        upload = data.get("file")
        job = services.dataset_import_start(project=project, user=request.user, file=upload,
                                            name=upload.name if upload else "", source_url=data["source_url"],
                                            format=data["format"], partial=data["partial"],
                                            model_name=data["model_name"], frame_every=data["frame_every"],
                                            tags=data["tags"], tag_folders=data["tag_folders"],
                                            skip_look_alikes=data["skip_look_alikes"])
        return Response(s.DatasetImportSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ImportDetail(APIView):
    @extend_schema(responses=s.DatasetImportSerializer, summary="Progress and the per-file report (manager)")
    def get(self, request: Request, import_id: int) -> Response:
        job = member_object(request, DatasetImport.objects.all(), import_id, Role.MANAGER)
        return Response(s.DatasetImportSerializer(job).data)


class ImportCancel(APIView):
    @extend_schema(request=None, responses=s.DatasetImportSerializer, summary="Stop an import; nothing is kept")
    def post(self, request: Request, import_id: int) -> Response:
        job = member_object(request, DatasetImport.objects.all(), import_id, Role.MANAGER)
        return Response(s.DatasetImportSerializer(services.dataset_job_cancel(job=job)).data)


class ExportListCreate(generics.ListAPIView):
    serializer_class = s.DatasetExportSerializer
    pagination_class = PagePagination

    def get_queryset(self) -> QuerySet[DatasetExport]:
        project = member_project(self.request, self.kwargs["project_id"], Role.MANAGER)
        return DatasetExport.objects.filter(project=project).order_by("-created_at", "-id")

    @extend_schema(request=s.ExportCreateSerializer, responses={202: s.DatasetExportSerializer},
                   summary="Export reviewed labels, a model's predictions or a snapshot as COCO, YOLO or VOC (manager)")
    def post(self, request: Request, project_id: int) -> Response:
        project = member_project(request, project_id, Role.MANAGER)
        data = validated(s.ExportCreateSerializer, request.data)
        spec = ExportSpec(
            format=data["format"], source=data["source"], include_images=data["include_images"],
            min_score=data["min_score"],
            model_version=ModelVersion.objects.filter(pk=data.get("model_version"), project=project).first(),
            snapshot=DatasetSnapshot.objects.filter(pk=data.get("snapshot"), project=project).first(),
            image_ids=tuple(data["images"]) if "images" in data else None,
        )
        job = services.dataset_export_start(project=project, user=request.user, spec=spec)
        return Response(s.DatasetExportSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ExportDetail(APIView):
    @extend_schema(responses=s.DatasetExportSerializer, summary="Progress; download_ready once the zip is written")
    def get(self, request: Request, export_id: int) -> Response:
        job = member_object(request, DatasetExport.objects.all(), export_id, Role.MANAGER)
        return Response(s.DatasetExportSerializer(job).data)


class ExportCancel(APIView):
    @extend_schema(request=None, responses=s.DatasetExportSerializer, summary="Stop an export")
    def post(self, request: Request, export_id: int) -> Response:
        job = member_object(request, DatasetExport.objects.all(), export_id, Role.MANAGER)
        return Response(s.DatasetExportSerializer(services.dataset_job_cancel(job=job)).data)


class ExportDownload(APIView):
    @extend_schema(responses={(200, "application/zip"): OpenApiTypes.BINARY},
                   summary="The finished export, streamed as a zip (manager)")
    def get(self, request: Request, export_id: int) -> FileResponse:
        job = member_object(request, DatasetExport.objects.all(), export_id, Role.MANAGER)
        if not job.file or job.status != "succeeded":
            raise NotFound(f"Export {job.pk} has no file to download yet (status: {job.status}).")
        return FileResponse(job.file.open("rb"), content_type="application/zip", as_attachment=True,
                            filename=f"project-{job.project_id}-{job.source}-{job.format}-{job.pk}.zip")


class BucketWatchListCreate(generics.ListAPIView):
    serializer_class = s.BucketWatchSerializer
    pagination_class = PagePagination

    def get_queryset(self) -> QuerySet[BucketWatch]:
        project = member_project(self.request, self.kwargs["project_id"], Role.MANAGER)
        return BucketWatch.objects.filter(project=project).order_by("source_url")

    @extend_schema(request=s.BucketWatchCreateSerializer, responses={201: s.BucketWatchSerializer},
                   summary="Import a bucket prefix's new objects on a schedule, the first time now (manager)")
    def post(self, request: Request, project_id: int) -> Response:
        project = member_project(request, project_id, Role.MANAGER)
        data = validated(s.BucketWatchCreateSerializer, request.data)
        watch = watches.bucket_watch_create(project=project, user=request.user, **data)
        watches.bucket_watches_run(watch_ids=[watch.pk])
        watch.refresh_from_db()
        return Response(s.BucketWatchSerializer(watch).data, status=status.HTTP_201_CREATED)


class BucketWatchDetail(APIView):
    @extend_schema(responses={204: None}, summary="Stop watching a prefix (manager)")
    def delete(self, request: Request, watch_id: int) -> Response:
        watches.bucket_watch_delete(watch=member_object(request, BucketWatch.objects.all(), watch_id, Role.MANAGER))
        return Response(status=status.HTTP_204_NO_CONTENT)
