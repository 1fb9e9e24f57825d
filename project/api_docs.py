"""The API's ReDoc page, served offline (the schema and Swagger UI are drf-spectacular's own views).

Its own module: drf-spectacular's views read DRF's settings when imported, which name project.api.
"""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularRedocView


class RedocView(SpectacularRedocView):
    """ReDoc, whose browser may load images from this server only: the bundle's sidebar shows
    Redocly's logo from cdn.redoc.ly, which no ReDoc option turns off (and a reader's browser should
    not tell a third party it read the docs). Refused, the logo hides itself."""

    @extend_schema(exclude=True)  # a page, not an operation (as drf-spectacular's own view)
    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)
        response["Content-Security-Policy"] = "img-src 'self' data: blob:"
        return response
