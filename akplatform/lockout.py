"""Failed authentications per client address: too many, and the address waits (429).

A bad API key and a wrong admin password count alike. After ``AK_API__AUTH_FAILURE_LIMIT``
failures within ``AK_API__AUTH_FAILURE_WINDOW`` seconds from one address, that address is refused
until the window that began with its first failure has passed. Counts live in the default cache:
shared by every process when it is Redis (``AK_CACHE__URL``), per process otherwise. The address is
the request's ``REMOTE_ADDR`` (behind a proxy, the server sets it from the proxy's headers).
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

from akplatform.rate_window import window_count, window_peek, window_wait


def _key(request: HttpRequest) -> str:
    return f"auth-failures:{request.META.get('REMOTE_ADDR', '')}"


def lockout_wait(request: HttpRequest) -> int | None:
    """Seconds the request's address must wait before it may authenticate again, or None."""
    key = _key(request)
    if window_peek(key) < settings.AK_API["AUTH_FAILURE_LIMIT"]:
        return None
    return window_wait(key, settings.AK_API["AUTH_FAILURE_WINDOW"])


def lockout_failed(request: HttpRequest) -> None:
    """Count a failed authentication from the request's address (atomically: ``incr``)."""
    window_count(_key(request), settings.AK_API["AUTH_FAILURE_WINDOW"])
