"""What the webhooks API reads and writes. Events and URLs are checked by the services, so the API,
the page and the admin refuse the same things with the same words."""
from rest_framework import serializers

from webhooks.models import Webhook, WebhookDelivery


class WebhookSerializer(serializers.ModelSerializer):
    class Meta:
        model = Webhook
        fields = ["id", "project", "url", "events", "is_active", "secret", "created_by", "created_at"]
        read_only_fields = fields


class WebhookCreateSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=2000)
    events = serializers.ListField(child=serializers.CharField(max_length=64), max_length=20,
                                   help_text="Event names; see the Event list in docs/api.md.")


class WebhookUpdateSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=2000, required=False)
    events = serializers.ListField(child=serializers.CharField(max_length=64), max_length=20, required=False)
    is_active = serializers.BooleanField(required=False)
    rotate_secret = serializers.BooleanField(required=False, default=False,
                                             help_text="Give the webhook a new secret (shown in the response).")


class WebhookDeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = ["id", "webhook", "event", "status", "attempts", "response_status", "error", "created_at",
                  "last_attempt_at", "payload"]
        read_only_fields = fields
