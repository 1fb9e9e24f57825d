from django.urls import path

from inference import views

app_name = "inference"

urlpatterns = [
    path("model-versions/<int:version_id>/errors/", views.model_version_errors, name="model_version_errors"),
    path("projects/<int:project_id>/second-look/", views.second_look, name="second_look"),
    path("suspected-errors/<int:suspect_id>/dismiss", views.suspect_dismiss_view, name="suspect_dismiss"),
]
