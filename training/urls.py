from django.urls import path

from training import views

app_name = "training"

urlpatterns = [
    path("projects/<int:project_id>/models/", views.project_models, name="project_models"),
    path("projects/<int:project_id>/models/compare/", views.model_versions_compare_page, name="compare"),
    path("projects/<int:project_id>/training", views.training_start, name="training_start"),
    path("training-runs/<int:run_id>/cancel", views.training_cancel, name="training_cancel"),
    path("model-versions/<int:version_id>/promote", views.model_version_promote, name="model_version_promote"),
]
