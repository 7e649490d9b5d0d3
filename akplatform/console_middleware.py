"""The console's middleware, for the console's paths only.

Django's session, CSRF, authentication, messages and clickjacking middleware serve the admin
(``/admin/``): the API authenticates each request by its key and needs none of them. Under ASGI
each of them costs the request two thread hops (Django runs a synchronous ``process_request`` and
``process_response`` in a thread), about a fifth of what a sync run's request costs on its own.
So they are chained here, in Django's order, and a request outside the console skips the chain
(its response still gets the ``Content-Length`` that ``CommonMiddleware`` would give it).
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.utils.module_loading import import_string

CONSOLE_MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]


class ConsoleMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        chain = get_response
        for path in reversed(CONSOLE_MIDDLEWARE):
            chain = import_string(path)(chain)
        self.console = chain
        self.prefix = settings.AK_CONSOLE_PATH
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        """The console's chain for its paths, the view straight away for the others (in the mode
        Django calls this in: a coroutine under ASGI)."""
        if request.path_info.startswith(self.prefix):
            return self.console(request)
        if iscoroutinefunction(self):
            return self._api(request)
        return with_length(self.get_response(request))

    async def _api(self, request: HttpRequest) -> HttpResponseBase:
        return with_length(await self.get_response(request))


def with_length(response: HttpResponseBase) -> HttpResponseBase:
    """``Content-Length`` on a response that is not streamed, as ``CommonMiddleware`` sets it."""
    if not response.streaming and not response.has_header("Content-Length"):
        response.headers["Content-Length"] = str(len(response.content))  # type: ignore[attr-defined]
    return response
