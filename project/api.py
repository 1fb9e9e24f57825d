"""What every REST endpoint shares: the error format, pagination and the project-role check.

Errors always look like {"detail": "<one sentence a person understands>", "fields": {"<field>": [...]}}
("fields" only when a field is at fault), whether they come from a serializer, from a service's
Django ValidationError, or from a permission check.
"""
from __future__ import annotations

import re

from django import forms
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Model
from django.urls import reverse
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, pagination, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from project.converters import MAX_ID, IdConverter
from review.access import object_for_member, project_for_member
from review.models import Project, Role


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's handler, plus services' ValidationErrors as 400, all in one JSON shape."""
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(_django_errors(exc))
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = {"detail": _summary(fields), "fields": fields}
    elif isinstance(response.data, dict) and "detail" in response.data:
        response.data = {"detail": str(response.data["detail"])}
    return response


def _django_errors(exc: DjangoValidationError) -> dict[str, list[str]]:
    if hasattr(exc, "error_dict"):
        return {("non_field_errors" if field == "__all__" else field): messages
                for field, messages in exc.message_dict.items()}
    return {"non_field_errors": exc.messages}


def _summary(fields: dict) -> str:
    """The first message, prefixed with its field: what a person reads first."""
    for field, messages in fields.items():
        message = _first_message(messages)
        if message:
            return message if field == "non_field_errors" else f"{field}: {message}"
    return "The request is not valid."


def _first_message(messages) -> str:
    if isinstance(messages, dict):
        for key, nested in messages.items():
            if found := _first_message(nested):
                return f"{key}: {found}"
        return ""
    if isinstance(messages, (list, tuple)):
        for nested in messages:
            if found := _first_message(nested):
                return found
        return ""
    return str(messages)


class IdFilter(filters.NumberFilter):
    """A database id in a query filter: a whole number that fits a 64-bit integer, else 400 (a longer
    one overflowed inside the database driver: a 500), as `<id:...>` does for paths."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        super().__init__(*args, min_value=1, max_value=MAX_ID, **kwargs)


def query_id(request, name: str) -> int | None:
    """An id read from the query string by hand: None when absent or blank, 400 when not an id."""
    value = request.query_params.get(name) or ""
    if not value:
        return None
    if not re.fullmatch(IdConverter.regex, value):
        raise exceptions.ValidationError({name: [f"Give an id (a whole number), not {value[:20]!r}."]})
    return int(value)


class PagePagination(pagination.PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


def validated(serializer_class: type[serializers.Serializer], data) -> dict:
    """Validate request data with a small input serializer; a 400 in the shared shape otherwise."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def member_project(request, project_id: int, role: str = Role.ANNOTATOR) -> Project:
    """The project if the requester holds `role` in it: 404 for non-members, 403 for a lower role."""
    return project_for_member(request.user, project_id, role=role)


def member_object(request, queryset, pk: int, role: str = Role.ANNOTATOR) -> Model:
    """One object of a project the requester belongs to (via its `project_id`), else 404 or 403."""
    return object_for_member(request.user, queryset, pk, role=role)


def conflict(detail: str, current: dict) -> Response:
    return Response({"detail": detail, "current": current}, status=status.HTTP_409_CONFLICT)


class ApiRoot(APIView):
    """`/api/v1/` itself: where the contract and its viewers are, and how a script gets a token."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(exclude=True)
    def get(self, request) -> Response:
        def url(name: str) -> str:
            return request.build_absolute_uri(reverse(name))
        return Response({
            "schema": url("api:schema"), "docs": url("api:docs"), "redoc": url("api:redoc"),
            "projects": url("api:project_list"), "architectures": url("api:architecture_list"),
            "token": f"Send 'Authorization: Token <key>'; each user makes their key at {url('review:api_token')}.",
        })
