"""REST endpoints of webhooks (manager): add, change and delete them, send a test, read and resend deliveries."""
from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from project.api import PagePagination, member_object, member_project, validated
from review.models import Role
from webhooks import serializers as s
from webhooks import services
from webhooks.models import Webhook, WebhookDelivery


class WebhookListCreate(generics.ListAPIView):
    serializer_class = s.WebhookSerializer
    pagination_class = PagePagination

    def get_queryset(self) -> QuerySet[Webhook]:
        project = member_project(self.request, self.kwargs["project_id"], Role.MANAGER)
        return Webhook.objects.filter(project=project)

    @extend_schema(request=s.WebhookCreateSerializer, responses={201: s.WebhookSerializer},
                   summary="Add a webhook: a URL told of the chosen events by a signed POST (manager)")
    def post(self, request: Request, project_id: int) -> Response:
        project = member_project(request, project_id, Role.MANAGER)
        data = validated(s.WebhookCreateSerializer, request.data)
        webhook = services.webhook_create(project=project, user=request.user, url=data["url"], events=data["events"])
        return Response(s.WebhookSerializer(webhook).data, status=status.HTTP_201_CREATED)


class WebhookDetail(APIView):
    @extend_schema(responses=s.WebhookSerializer, summary="A webhook, with its secret (manager)")
    def get(self, request: Request, webhook_id: int) -> Response:
        return Response(s.WebhookSerializer(_webhook(request, webhook_id)).data)

    @extend_schema(request=s.WebhookUpdateSerializer, responses=s.WebhookSerializer,
                   summary="Change a webhook's URL or events, turn it off or on, or rotate its secret (manager)")
    def patch(self, request: Request, webhook_id: int) -> Response:
        webhook = _webhook(request, webhook_id)
        data = validated(s.WebhookUpdateSerializer, request.data)
        return Response(s.WebhookSerializer(services.webhook_update(webhook=webhook, **data)).data)

    @extend_schema(responses={204: None}, summary="Delete a webhook and its deliveries (manager)")
    def delete(self, request: Request, webhook_id: int) -> Response:
        services.webhook_delete(webhook=_webhook(request, webhook_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookPing(APIView):
    @extend_schema(request=None, responses={202: s.WebhookDeliverySerializer},
                   summary="Send a test delivery (event `ping`) now (manager)")
    def post(self, request: Request, webhook_id: int) -> Response:
        row = services.webhook_ping(webhook=_webhook(request, webhook_id))
        return Response(s.WebhookDeliverySerializer(row).data, status=status.HTTP_202_ACCEPTED)


class WebhookDeliveryList(generics.ListAPIView):
    serializer_class = s.WebhookDeliverySerializer
    pagination_class = PagePagination

    @extend_schema(summary="A webhook's deliveries, newest first: status, attempts, the receiver's answer (manager)")
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[WebhookDelivery]:
        return _webhook(self.request, self.kwargs["webhook_id"]).deliveries.all()


class WebhookRedeliver(APIView):
    @extend_schema(request=None, responses={202: s.WebhookDeliverySerializer},
                   summary="Send a past delivery's event again, as a new delivery (manager)")
    def post(self, request: Request, webhook_id: int, delivery_id: int) -> Response:
        webhook = _webhook(request, webhook_id)
        row = services.delivery_redeliver(delivery_row=get_object_or_404(webhook.deliveries, pk=delivery_id))
        return Response(s.WebhookDeliverySerializer(row).data, status=status.HTTP_202_ACCEPTED)


def _webhook(request: Request, webhook_id: int) -> Webhook:
    return member_object(request, Webhook.objects.all(), webhook_id, Role.MANAGER)
