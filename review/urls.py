from django.urls import path

import project.converters  # noqa: F401  (the <id:...> converter)

from review import settings_views, views

app_name = "review"

urlpatterns = [
    path("", views.project_list, name="project_list"),
    path("project-deletions/<id:deletion_id>/cancel", views.project_deletion_cancel, name="project_deletion_cancel"),
    path("projects/<id:project_id>/", views.project_detail, name="project_detail"),
    path("projects/<id:project_id>/queue/", views.project_queue, name="project_queue"),
    path("projects/<id:project_id>/queue/bulk", views.queue_bulk, name="queue_bulk"),
    path("projects/<id:project_id>/queue/next", views.queue_next, name="queue_next"),
    path("projects/<id:project_id>/team/", views.project_team, name="project_team"),
    path("images/<id:image_id>/edit", views.image_editor, name="image_editor"),
    path("projects/<id:project_id>/upload", views.image_upload, name="image_upload"),
    path("projects/<id:project_id>/inference", views.inference_start, name="inference_start"),
    path("images/<id:image_id>/file", views.image_file, name="image_file"),
    path("images/<id:image_id>/thumbnail", views.image_thumbnail, name="image_thumbnail"),
    path("images/<id:image_id>/region", views.image_region, name="image_region"),
    path("images/<id:image_id>/delete", views.image_remove, name="image_remove"),
    path("account/", views.account, name="account"),
    path("account/token/", views.api_token, name="api_token"),
    path("account/email/<str:token>/", views.email_confirm, name="email_confirm"),
    # Setting a project up (review/settings_views.py)
    path("projects/new", settings_views.project_create, name="project_create"),
    path("projects/<id:project_id>/settings/", settings_views.project_settings, name="project_settings"),
    path("projects/<id:project_id>/classes", settings_views.label_class_add, name="label_class_add"),
    path("label-classes/<id:class_id>/edit", settings_views.label_class_edit, name="label_class_edit"),
    path("label-classes/<id:class_id>/delete", settings_views.label_class_remove, name="label_class_remove"),
    path("tags/<id:tag_id>/edit", settings_views.tag_edit, name="tag_edit"),
    path("tags/<id:tag_id>/delete", settings_views.tag_remove, name="tag_remove"),
    path("projects/<id:project_id>/members", settings_views.member_set, name="member_set"),
    path("projects/<id:project_id>/members/<id:user_id>/remove", settings_views.member_remove,
         name="member_remove"),
    path("projects/<id:project_id>/delete", settings_views.project_remove, name="project_remove"),
]
