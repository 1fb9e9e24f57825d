from django.contrib import admin

from project.admin_base import ViewOnlyAdmin
from webhooks.models import Webhook, WebhookDelivery


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    """Staff see and switch webhooks off; adding one (with its checks) is the project page's or the API's."""

    list_display = ["url", "project", "events", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["url", "project__name"]
    readonly_fields = ["project", "url", "events", "secret", "created_by", "created_at"]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ViewOnlyAdmin, admin.ModelAdmin):
    list_display = ["event", "webhook", "status", "attempts", "response_status", "created_at"]
    list_filter = ["status", "event"]
    search_fields = ["webhook__url"]
    readonly_fields = [field.name for field in WebhookDelivery._meta.fields]
