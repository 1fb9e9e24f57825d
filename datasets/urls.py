from django.urls import path

import project.converters  # noqa: F401  (the <id:...> converter)

from datasets import views

app_name = "datasets"

urlpatterns = [
    path("projects/<id:project_id>/data/", views.project_data, name="project_data"),
    path("projects/<id:project_id>/data/import", views.import_start, name="import_start"),
    path("projects/<id:project_id>/data/export", views.export_start, name="export_start"),
    path("data-jobs/<str:kind>/<id:job_id>/cancel", views.job_cancel, name="job_cancel"),
    path("projects/<id:project_id>/data/watch", views.bucket_watch_add, name="bucket_watch_add"),
    path("bucket-watches/<id:watch_id>/remove", views.bucket_watch_remove, name="bucket_watch_remove"),
]
