from django.urls import path

from inference import views

app_name = "inference"

urlpatterns = [
    path("model-versions/<int:version_id>/errors/", views.model_version_errors, name="model_version_errors"),
]
