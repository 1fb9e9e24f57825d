from django.urls import path

from review import views

app_name = "review"

urlpatterns = [
    path("", views.project_list, name="project_list"),
    path("projects/<int:project_id>/", views.project_detail, name="project_detail"),
    path("projects/<int:project_id>/queue/", views.project_queue, name="project_queue"),
    path("projects/<int:project_id>/queue/next", views.queue_next, name="queue_next"),
    path("images/<int:image_id>/edit", views.image_editor, name="image_editor"),
    path("projects/<int:project_id>/upload", views.image_upload, name="image_upload"),
    path("projects/<int:project_id>/inference", views.inference_start, name="inference_start"),
    path("images/<int:image_id>/file", views.image_file, name="image_file"),
    path("account/token/", views.api_token, name="api_token"),
]
