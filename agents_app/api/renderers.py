"""Content negotiation of the endpoints that stream: ``text/event-stream`` is acceptable there.

An ``EventSource`` sends ``Accept: text/event-stream``, which DRF answers ``406`` unless a renderer
offers it. The stream itself is a ``StreamingHttpResponse``; every other answer of those views is
JSON whatever the client accepted (``EventStreamViewMixin.finalize_response``).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response


class EventStreamRenderer(BaseRenderer):
    """``text/event-stream`` for content negotiation. It renders nothing itself: the stream is a
    ``StreamingHttpResponse`` (``views.event_stream``), and the other answers go out as JSON."""

    media_type = "text/event-stream"
    format = "event-stream"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        return JSONRenderer().render(data, "application/json", renderer_context)  # not reached: see the mixin


#: For those views' ``extend_schema(parameters=...)``: DRF's ``?format=`` picks among renderers, and
#: drf-spectacular documents it once a view has two; the Accept header is what these views read.
NO_FORMAT_PARAMETER = OpenApiParameter("format", exclude=True)


class EventStreamViewMixin:
    """For a view that streams Server-Sent Events: ``Accept: text/event-stream``, ``*/*`` or no
    Accept are all served; what is not the stream (errors, other answers) is JSON."""

    renderer_classes = [JSONRenderer, EventStreamRenderer]

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
        if isinstance(response, Response) and isinstance(response.accepted_renderer, EventStreamRenderer):
            response.accepted_renderer = JSONRenderer()
            response.accepted_media_type = JSONRenderer.media_type
        return response
