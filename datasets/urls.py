from django.urls import path

from datasets import views

app_name = "datasets"

urlpatterns = [
    path("projects/<int:project_id>/data/", views.project_data, name="project_data"),
    path("projects/<int:project_id>/data/import", views.import_start, name="import_start"),
    path("projects/<int:project_id>/data/export", views.export_start, name="export_start"),
    path("data-jobs/<str:kind>/<int:job_id>/cancel", views.job_cancel, name="job_cancel"),
]
