"""The whole REST API in one list, under /api/v1/. Collections hang under their project; single
objects are addressed by id (the access check finds their project)."""
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

import project.converters  # noqa: F401  (the <id:...> converter)
from datasets import api as datasets_api
from inference import api as inference_api
from project.api import ApiRoot
from project.api_docs import RedocView
from review import api as review_api
from training import api as training_api
from webhooks import api as webhooks_api

urlpatterns = [
    # Projects, people and classes
    path("projects/", review_api.ProjectListCreate.as_view(), name="project_list"),
    path("projects/<id:project_id>/", review_api.ProjectDetail.as_view(), name="project_detail"),
    path("project-deletions/", review_api.ProjectDeletionList.as_view(), name="project_deletion_list"),
    path("project-deletions/<id:deletion_id>/", review_api.ProjectDeletionDetail.as_view(),
         name="project_deletion_detail"),
    path("project-deletions/<id:deletion_id>/cancel/", review_api.ProjectDeletionCancel.as_view(),
         name="project_deletion_cancel"),
    path("projects/<id:project_id>/members/", review_api.MemberListCreate.as_view(), name="member_list"),
    path("projects/<id:project_id>/members/<id:user_id>/", review_api.MemberDetail.as_view(),
         name="member_detail"),
    path("projects/<id:project_id>/label-classes/", review_api.LabelClassListCreate.as_view(),
         name="label_class_list"),
    path("projects/<id:project_id>/label-classes/counts/", review_api.LabelClassCounts.as_view(),
         name="label_class_counts"),
    path("label-classes/<id:class_id>/", review_api.LabelClassDetail.as_view(), name="label_class_detail"),
    path("projects/<id:project_id>/tags/", review_api.TagList.as_view(), name="tag_list"),
    path("tags/<id:tag_id>/", review_api.TagDetail.as_view(), name="tag_detail"),
    # Images and the human boxes on them
    path("projects/<id:project_id>/images/", review_api.ImageListUpload.as_view(), name="image_list"),
    path("projects/<id:project_id>/images/bulk/", review_api.ImageBulkAction.as_view(), name="image_bulk"),
    path("projects/<id:project_id>/images/zip/", review_api.ImageZipUpload.as_view(), name="image_zip_upload"),
    path("projects/<id:project_id>/next-image/", review_api.NextImage.as_view(), name="next_image"),
    path("projects/<id:project_id>/team/", review_api.TeamActivity.as_view(), name="team_activity"),
    path("images/<id:image_id>/", review_api.ImageDetail.as_view(), name="image_detail"),
    path("images/<id:image_id>/file/", review_api.ImageFile.as_view(), name="image_file"),
    path("images/<id:image_id>/thumbnail/", review_api.ImageThumbnail.as_view(), name="image_thumbnail"),
    path("images/<id:image_id>/boxes/", review_api.ImageBoxesSave.as_view(), name="image_boxes"),
    path("images/<id:image_id>/status/", review_api.ImageStatusSet.as_view(), name="image_status"),
    path("images/<id:image_id>/comments/", review_api.ImageComments.as_view(), name="image_comments"),
    path("images/<id:image_id>/history/", review_api.ImageBoxHistory.as_view(), name="image_box_history"),
    path("comments/<id:comment_id>/", review_api.CommentDetail.as_view(), name="comment_detail"),
    # Models and what they predicted
    path("architectures/", inference_api.ArchitectureList.as_view(), name="architecture_list"),
    path("projects/<id:project_id>/model-versions/", inference_api.ModelVersionListCreate.as_view(),
         name="model_version_list"),
    path("projects/<id:project_id>/model-versions/coco/", inference_api.ModelVersionFromCoco.as_view(),
         name="model_version_from_coco"),
    path("projects/<id:project_id>/model-versions/rollback/", inference_api.ModelVersionRollback.as_view(),
         name="model_version_rollback"),
    path("projects/<id:project_id>/model-versions/compare/", training_api.ModelVersionCompare.as_view(),
         name="model_version_compare"),
    path("model-versions/<id:version_id>/", inference_api.ModelVersionDetail.as_view(), name="model_version_detail"),
    path("projects/<id:project_id>/model-version-deletions/", inference_api.ModelVersionDeletionList.as_view(),
         name="model_version_deletion_list"),
    path("model-version-deletions/<id:version_deletion_id>/", inference_api.ModelVersionDeletionDetail.as_view(),
         name="model_version_deletion_detail"),
    path("model-version-deletions/<id:version_deletion_id>/cancel/", inference_api.ModelVersionDeletionCancel.as_view(),
         name="model_version_deletion_cancel"),
    path("model-versions/<id:version_id>/weights/", inference_api.ModelVersionWeights.as_view(),
         name="model_version_weights"),
    path("model-versions/<id:version_id>/exports/", inference_api.ModelExportListCreate.as_view(),
         name="model_export_list"),
    path("model-exports/<id:model_export_id>/", inference_api.ModelExportDetail.as_view(), name="model_export_detail"),
    path("model-exports/<id:model_export_id>/cancel/", inference_api.ModelExportCancel.as_view(),
         name="model_export_cancel"),
    path("model-exports/<id:model_export_id>/file/", inference_api.ModelExportFile.as_view(), name="model_export_file"),
    path("model-versions/<id:version_id>/promote/", inference_api.ModelVersionPromote.as_view(),
         name="model_version_promote"),
    path("model-versions/<id:version_id>/operating-points/", training_api.ModelVersionOperatingPoints.as_view(),
         name="model_version_operating_points"),
    path("projects/<id:project_id>/predictions/", inference_api.PredictionList.as_view(), name="prediction_list"),
    # Error review
    path("model-versions/<id:version_id>/outcomes/", inference_api.BoxOutcomeList.as_view(), name="box_outcome_list"),
    path("model-versions/<id:version_id>/outcomes/counts/", inference_api.BoxOutcomeCounts.as_view(),
         name="box_outcome_counts"),
    path("projects/<id:project_id>/suspected-errors/", inference_api.SuspectedErrorList.as_view(),
         name="suspected_error_list"),
    path("projects/<id:project_id>/suspected-errors/rates/", inference_api.SuspectedErrorRates.as_view(),
         name="suspected_error_rates"),
    path("suspected-errors/<id:suspect_id>/dismiss/", inference_api.SuspectedErrorDismiss.as_view(),
         name="suspected_error_dismiss"),
    # Jobs
    path("projects/<id:project_id>/inference-runs/", inference_api.InferenceRunListCreate.as_view(),
         name="inference_run_list"),
    path("inference-runs/<id:run_id>/", inference_api.InferenceRunDetail.as_view(), name="inference_run_detail"),
    path("inference-runs/<id:run_id>/cancel/", inference_api.InferenceRunCancel.as_view(),
         name="inference_run_cancel"),
    path("projects/<id:project_id>/rerank-runs/", inference_api.RerankRunListCreate.as_view(), name="rerank_run_list"),
    path("rerank-runs/<id:run_id>/", inference_api.RerankRunDetail.as_view(), name="rerank_run_detail"),
    path("rerank-runs/<id:run_id>/cancel/", inference_api.RerankRunCancel.as_view(), name="rerank_run_cancel"),
    path("projects/<id:project_id>/training-runs/", training_api.TrainingRunListCreate.as_view(),
         name="training_run_list"),
    path("training-runs/<id:run_id>/", training_api.TrainingRunDetail.as_view(), name="training_run_detail"),
    path("training-runs/<id:run_id>/cancel/", training_api.TrainingRunCancel.as_view(), name="training_run_cancel"),
    # Frozen training data
    path("projects/<id:project_id>/snapshots/", training_api.SnapshotList.as_view(), name="snapshot_list"),
    path("snapshots/<id:snapshot_id>/", training_api.SnapshotDetail.as_view(), name="snapshot_detail"),
    path("snapshots/<id:snapshot_id>/download/", training_api.SnapshotDownload.as_view(), name="snapshot_download"),
    # Import and export
    path("projects/<id:project_id>/imports/", datasets_api.ImportListCreate.as_view(), name="import_list"),
    path("imports/<id:import_id>/", datasets_api.ImportDetail.as_view(), name="import_detail"),
    path("imports/<id:import_id>/cancel/", datasets_api.ImportCancel.as_view(), name="import_cancel"),
    path("projects/<id:project_id>/bucket-watches/", datasets_api.BucketWatchListCreate.as_view(),
         name="bucket_watch_list"),
    path("bucket-watches/<id:watch_id>/", datasets_api.BucketWatchDetail.as_view(), name="bucket_watch_detail"),
    path("projects/<id:project_id>/exports/", datasets_api.ExportListCreate.as_view(), name="export_list"),
    path("exports/<id:export_id>/", datasets_api.ExportDetail.as_view(), name="export_detail"),
    path("exports/<id:export_id>/cancel/", datasets_api.ExportCancel.as_view(), name="export_cancel"),
    path("exports/<id:export_id>/download/", datasets_api.ExportDownload.as_view(), name="export_download"),
    # Webhooks
    path("projects/<id:project_id>/webhooks/", webhooks_api.WebhookListCreate.as_view(), name="webhook_list"),
    path("webhooks/<id:webhook_id>/", webhooks_api.WebhookDetail.as_view(), name="webhook_detail"),
    path("webhooks/<id:webhook_id>/ping/", webhooks_api.WebhookPing.as_view(), name="webhook_ping"),
    path("webhooks/<id:webhook_id>/deliveries/", webhooks_api.WebhookDeliveryList.as_view(),
         name="webhook_delivery_list"),
    path("webhooks/<id:webhook_id>/deliveries/<id:delivery_id>/redeliver/", webhooks_api.WebhookRedeliver.as_view(),
         name="webhook_redeliver"),
    # The contract, served offline
    path("", ApiRoot.as_view(), name="root"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("redoc/", RedocView.as_view(url_name="api:schema"), name="redoc"),
]
