from django.urls import path

import project.converters  # noqa: F401  (the <id:...> converter)

from webhooks import views

app_name = "webhooks"

urlpatterns = [
    path("projects/<id:project_id>/webhooks/", views.webhook_list, name="webhook_list"),
    path("projects/<id:project_id>/webhooks/add", views.webhook_add, name="webhook_add"),
    path("webhooks/<id:webhook_id>/ping", views.webhook_ping, name="webhook_ping"),
    path("webhooks/<id:webhook_id>/toggle", views.webhook_toggle, name="webhook_toggle"),
    path("webhooks/<id:webhook_id>/delete", views.webhook_remove, name="webhook_remove"),
    path("webhooks/<id:webhook_id>/deliveries/<id:delivery_id>/redeliver", views.delivery_redeliver,
         name="delivery_redeliver"),
]
