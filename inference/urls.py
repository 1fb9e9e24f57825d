from django.urls import path

import project.converters  # noqa: F401  (the <id:...> converter)

from inference import views

app_name = "inference"

urlpatterns = [
    path("model-versions/<id:version_id>/errors/", views.model_version_errors, name="model_version_errors"),
    path("projects/<id:project_id>/second-look/", views.second_look, name="second_look"),
    path("suspected-errors/<id:suspect_id>/dismiss", views.suspect_dismiss_view, name="suspect_dismiss"),
    path("projects/<id:project_id>/rerank", views.rerank_start, name="rerank_start"),
    path("rerank-runs/<id:rerank_id>/cancel", views.rerank_cancel, name="rerank_cancel"),
    path("model-versions/<id:version_id>/delete", views.model_version_delete, name="model_version_delete"),
    path("model-version-deletions/<id:version_deletion_id>/cancel", views.model_version_deletion_cancel_view,
         name="model_version_deletion_cancel"),
    path("model-versions/<id:version_id>/export", views.model_export_start_view, name="model_export_start"),
    path("model-exports/<id:model_export_id>/cancel", views.model_export_cancel_view, name="model_export_cancel"),
]
