"""The API's answers to errors: one shape for all, ``{"code", "detail", "fields"?}``, with honest
status codes (a run's and the store's errors mapped by ``agents_app.errors.run_error``). DRF's
``EXCEPTION_HANDLER`` and Django's ``handler400/404/500`` in ``akplatform.urls``.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from agents_app.budgets.check import ERROR_CODE, BudgetExceeded
from agents_app.errors import error_body as _body
from agents_app.errors import run_error
from infra.limits import LimitReached


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request is too large."
    default_code = "too_large"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, RequestDataTooBig):
        exc = RequestTooLarge()
    if isinstance(exc, LimitReached):
        body = {**_body("limit_reached", str(exc)), "limit": exc.limit}
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
        return Response(body, status=exc.status, headers=headers)
    if isinstance(exc, BudgetExceeded):
        body = {**_body(ERROR_CODE, str(exc)), "resets_at": exc.resets_at.isoformat()}
        return Response(body, status=exc.status, headers={"Retry-After": str(exc.retry_after)})
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
