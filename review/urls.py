from django.urls import path

import project.converters  # noqa: F401  (the <id:...> converter)

from review import views

app_name = "review"

urlpatterns = [
    path("", views.project_list, name="project_list"),
    path("projects/<id:project_id>/", views.project_detail, name="project_detail"),
    path("projects/<id:project_id>/queue/", views.project_queue, name="project_queue"),
    path("projects/<id:project_id>/queue/next", views.queue_next, name="queue_next"),
    path("images/<id:image_id>/edit", views.image_editor, name="image_editor"),
    path("projects/<id:project_id>/upload", views.image_upload, name="image_upload"),
    path("projects/<id:project_id>/inference", views.inference_start, name="inference_start"),
    path("images/<id:image_id>/file", views.image_file, name="image_file"),
    path("account/token/", views.api_token, name="api_token"),
]
