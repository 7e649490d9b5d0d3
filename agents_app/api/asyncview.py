"""A DRF view whose handlers are coroutines, for the endpoints that wait on a model.

Authentication, permissions and throttles are DRF's, run in the process's I/O threads with their
database connection given back at once (``akplatform.aio.db``); then the handler awaits on the
server's event loop, holding no thread and no connection while the run works. Errors go through
the API's exception handler as in any other view.
"""

from __future__ import annotations

import inspect
from typing import Any

from django.http import HttpRequest
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from akplatform.aio import db


class AsyncAPIView(APIView):
    """Subclasses define ``async def post(self, request)`` (and so on) instead of plain methods;
    the handlers DRF defines itself (``options``) stay plain, and run in an I/O thread."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:  # a coroutine: Django awaits it
        return self._dispatch(request, *args, **kwargs)

    async def _dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Response:
        self.args, self.kwargs = args, kwargs
        drf_request = self.initialize_request(request, *args, **kwargs)
        self.request = drf_request
        self.headers = self.default_response_headers
        try:
            await db(self._initial, drf_request, *args, **kwargs)
            handler = getattr(self, drf_request.method.lower(), None)
            if handler is None or drf_request.method.lower() not in self.http_method_names:
                response = self.http_method_not_allowed(drf_request, *args, **kwargs)
            elif inspect.iscoroutinefunction(handler):
                response = await handler(drf_request, *args, **kwargs)
            else:  # DRF's own, plain ones (``options``): in an I/O thread, like the rest of DRF's work
                response = await db(handler, drf_request, *args, **kwargs)
        except Exception as exc:
            response = self.handle_exception(exc)
        self.response = self.finalize_response(drf_request, response, *args, **kwargs)
        return self.response

    def _initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        """DRF's ``initial`` (authentication, permissions, throttles), and the body parsed."""
        self.initial(request, *args, **kwargs)
        request.data  # noqa: B018 - parse now, in this thread: the handler only reads it
