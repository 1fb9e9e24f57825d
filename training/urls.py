from django.urls import path

import project.converters  # noqa: F401  (the <id:...> converter)

from training import views

app_name = "training"

urlpatterns = [
    path("projects/<id:project_id>/models/", views.project_models, name="project_models"),
    path("projects/<id:project_id>/models/compare/", views.model_versions_compare_page, name="compare"),
    path("projects/<id:project_id>/training", views.training_start, name="training_start"),
    path("projects/<id:project_id>/models/upload", views.model_version_upload, name="model_version_upload"),
    path("projects/<id:project_id>/models/coco", views.model_version_from_coco_view, name="model_version_from_coco"),
    path("training-runs/<id:run_id>/cancel", views.training_cancel, name="training_cancel"),
    path("model-versions/<id:version_id>/thresholds/", views.model_version_thresholds, name="thresholds"),
    path("model-versions/<id:version_id>/review-threshold", views.review_threshold_use, name="review_threshold_use"),
    path("model-versions/<id:version_id>/promote", views.model_version_promote, name="model_version_promote"),
]
