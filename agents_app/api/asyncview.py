"""A DRF view whose handlers are coroutines, for the endpoints that wait on a model.

Authentication, permissions and throttles are DRF's, run in the process's I/O threads with their
database connection given back at once (``akplatform.aio.db``); then a coroutine handler awaits on
the server's event loop, holding no thread and no connection while the run works, and a plain
one runs on in the same thread (one hop for the request). Errors go through
the API's exception handler as in any other view.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from akplatform.aio import db


# Subclasses define ``async def post(self, request)`` (and so on) for handlers that await, or plain
# methods for handlers that only read and write: a plain handler runs in the same I/O hop as DRF's
# checks (one thread hop for the whole request), as do DRF's own (``options``). (A comment, not a
# docstring: the API's document would show a docstring as the operations' description.)
class AsyncAPIView(APIView):
    view_is_async = True  # ``dispatch`` is a coroutine, whatever the handlers are

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:  # a coroutine: Django awaits it
        return self._dispatch(request, *args, **kwargs)

    async def _dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Response:
        self.args, self.kwargs = args, kwargs
        drf_request = self.initialize_request(request, *args, **kwargs)
        self.request = drf_request
        self.headers = self.default_response_headers
        try:
            method = drf_request.method.lower()
            handler = getattr(self, method, None) if method in self.http_method_names else None
            if handler is not None and inspect.iscoroutinefunction(handler):
                await db(self._initial, drf_request, *args, **kwargs)
                response = await handler(drf_request, *args, **kwargs)
            else:
                response = await db(self._initial_then, handler, drf_request, *args, **kwargs)
        except Exception as exc:
            response = self.handle_exception(exc)
        self.response = self.finalize_response(drf_request, response, *args, **kwargs)
        return self.response

    def _initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        """DRF's ``initial`` (authentication, permissions, throttles), and the body parsed."""
        self.initial(request, *args, **kwargs)
        request.data  # noqa: B018 - parse now, in this thread: the handler only reads it

    def _initial_then(
        self, handler: Callable[..., Response] | None, request: Request, *args: Any, **kwargs: Any
    ) -> Response:
        """``_initial``, then the plain ``handler`` (None: the method is not allowed)."""
        self._initial(request, *args, **kwargs)
        if handler is None:
            return self.http_method_not_allowed(request, *args, **kwargs)
        return handler(request, *args, **kwargs)
