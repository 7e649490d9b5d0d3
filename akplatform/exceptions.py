"""One shape for every API error: ``{"code", "detail", "fields"?}``, with honest status codes.

Store errors become 503 (down), 409 (busy, or changed during the run) and 413 (too large).
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from akplatform.limits import LimitReached
from sessions_app.stores.base import (
    LockLost,
    PayloadTooLarge,
    SessionBusy,
    StoreError,
    StoreUnavailable,
    VersionConflict,
)

logger = logging.getLogger(__name__)

_STORE_ERRORS: list[tuple[type[StoreError], int, str, str]] = [
    (SessionBusy, 409, "session_busy", "The session is busy with another run."),
    (VersionConflict, 409, "session_changed", "The session changed during the run; nothing was saved."),
    (LockLost, 409, "session_changed", "The session changed during the run; nothing was saved."),
    (PayloadTooLarge, 413, "too_large", "The payload is too large to store."),
    (StoreUnavailable, 503, "store_unavailable", "The session store is unavailable; try again."),
    (StoreError, 503, "store_error", "The session store failed; try again."),
]


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request is too large."
    default_code = "too_large"


class BrokerUnavailable(Exception):
    """The task broker did not take a task: nothing was queued."""


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "A service the platform depends on is unavailable."
    default_code = "unavailable"


def _body(code: str, detail: Any, fields: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "detail": detail}
    if fields is not None:
        body["fields"] = fields
    return body


def _run_errors() -> list[tuple[type[Exception], int, str, str | None]]:
    """Errors of the run services; ``None`` detail: the exception's own message. (Imported here:
    the API's errors are the agents app's; this module is named by settings, which it must not load.)"""
    from agents_app.errors import IdempotencyConflict, RunCancelled, RunFailed, RunTimedOut, SessionExpired

    return [
        (BrokerUnavailable, 503, "broker_unavailable", "The task broker is unavailable; nothing was queued."),
        (IdempotencyConflict, 409, "idempotency_conflict", "This Idempotency-Key was used with another request."),
        (RunCancelled, 409, "run_cancelled", "The run was cancelled; nothing was saved."),
        (SessionExpired, 409, "session_expired", None),
        (RunTimedOut, 504, "run_timeout", None),
        (RunFailed, 502, "agent_failed", None),
    ]


def run_error(exc: Exception) -> tuple[int, dict[str, Any]] | None:
    """The status and body the API answers a run's or the store's error with; None for others.
    (A streamed run sends the body as its ``error`` event.)"""
    for error_type, status_code, code, detail in _run_errors():
        if isinstance(exc, error_type):
            body = _body(code, detail or str(exc))
            run = getattr(exc, "run", None)
            if run is not None:
                body["run_id"] = str(run.pk)
            return status_code, body
    for error_type, status_code, code, detail in _STORE_ERRORS:
        if isinstance(exc, error_type):
            if status_code >= 500:
                logger.warning("store error: %s", exc)
            return status_code, _body(code, detail)
    return None


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, RequestDataTooBig):
        exc = RequestTooLarge()
    if isinstance(exc, LimitReached):
        body = {**_body("limit_reached", str(exc)), "limit": exc.limit}
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
        return Response(body, status=exc.status, headers=headers)
    known = run_error(exc)
    if known is not None:
        return Response(known[1], status=known[0])
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        data = exc.detail
        if isinstance(data, dict):
            response.data = _body("invalid", "Invalid input.", data)
        else:
            response.data = _body("invalid", data if not isinstance(data, list) else " ".join(map(str, data)))
        return response
    detail = getattr(exc, "detail", None)
    code = exc.get_codes() if isinstance(exc, exceptions.APIException) else "not_found"
    if response.status_code == 404:
        code, detail = "not_found", str(detail or "Not found.")
    response.data = _body(code if isinstance(code, str) else "error", str(detail) if detail is not None else "")
    return response


def json_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(_body("not_found", "Not found."), status=404)


def json_server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse(_body("server_error", "Internal server error."), status=500)


def json_bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    if isinstance(exception, RequestDataTooBig):
        return JsonResponse(_body("too_large", "The request is too large."), status=413)
    return JsonResponse(_body("bad_request", "Bad request."), status=400)
