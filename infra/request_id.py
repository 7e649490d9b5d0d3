"""Every request's id: in its logs and on its response (``X-Request-ID``); its answer counted.

A client's (or proxy's) ``X-Request-ID`` of 1 to 200 visible ASCII characters is kept; any other
value, or none, is replaced by a new one (a uuid4's hex). It is bound to the logs of the request
(``infra.logs``), runs it starts included, and returned on every response, errors too. The
answer is counted in ``ak_http_requests_total`` (``infra.metrics``).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

from infra import logs, metrics

HEADER = "X-Request-ID"
VALID = re.compile(r"[\x21-\x7e]{1,200}")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def request_id_of(request: HttpRequest) -> str:
    given = request.headers.get(HEADER, "")
    return given if VALID.fullmatch(given) else uuid.uuid4().hex


class RequestIdMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if iscoroutinefunction(self):
            return self._acall(request)
        request_id = request_id_of(request)
        token = logs.bind(request_id=request_id)
        try:  # the thread serves other requests next: the id ends with this one
            return _answered(request, self.get_response(request), request_id)
        finally:
            logs.unbind(token)

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        # An ASGI request is a task of its own: its id stays bound to the end of it, through
        # Django's log of an error answer after the middleware.
        request_id = request_id_of(request)
        logs.bind(request_id=request_id)
        return _answered(request, await self.get_response(request), request_id)


def _answered(request: HttpRequest, response: HttpResponseBase, request_id: str) -> HttpResponseBase:
    response.headers[HEADER] = request_id
    method = request.method if request.method in METHODS else "other"
    metrics.HTTP_REQUESTS.labels(method=method, status=str(response.status_code)).inc()
    return response
