"""Django's ASGI handler, without a thread made for each request whose view is a coroutine."""

from __future__ import annotations

import functools
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.core.handlers.asgi import ASGIHandler
from django.urls import Resolver404, resolve


class Handler(ASGIHandler):
    """What ``akplatform.asgi`` serves: Django's handler, less a thread per coroutine view's request.

    Django runs each request in its own ``ThreadSensitiveContext``: the request's first synchronous
    call starts a thread for that request alone, which is joined when it ends. A sync view needs
    that (its code, its middleware's and its response's closing stay on one thread while other
    requests run). A coroutine view, such as the API's ``AsyncAPIView`` endpoints (a run, the poll
    of a run, its events), makes two small synchronous calls of Django's own, rendering and closing
    its response, and here they go to asgiref's one thread of the process instead: starting and
    joining a thread cost a poll a fifth of its CPU. What these views do that blocks goes to the
    I/O threads either way (``akplatform.aio``).
    """

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and view_is_coroutine(scope):
            await self.handle(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def view_is_coroutine(scope: dict[str, Any]) -> bool:
    """Whether the view the request's path resolves to is a coroutine (False: no view)."""
    path, root = scope["path"], scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return _view_is_coroutine_at(path)


@functools.lru_cache(maxsize=4096)  # a poll asks for the same path until its run ends
def _view_is_coroutine_at(path: str) -> bool:
    try:
        return iscoroutinefunction(resolve(path).func)
    except Resolver404:
        return False
