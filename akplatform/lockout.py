"""Failed authentications per client address: too many, and the address waits (429).

A bad API key and a wrong admin password count alike. After ``AK_API__AUTH_FAILURE_LIMIT``
failures within ``AK_API__AUTH_FAILURE_WINDOW`` seconds from one address, that address is refused
until the window that began with its first failure has passed. Counts live in the default cache:
shared by every process when it is Redis (``AK_CACHE__URL``), per process otherwise. The address is
the request's ``REMOTE_ADDR`` (behind a proxy, the server sets it from the proxy's headers).
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest


def _key(request: HttpRequest) -> str:
    return f"auth-failures:{request.META.get('REMOTE_ADDR', '')}"


def lockout_wait(request: HttpRequest) -> int | None:
    """Seconds the request's address must wait before it may authenticate again, or None."""
    key = _key(request)
    found = cache.get_many([f"{key}:n", f"{key}:since"])
    if found.get(f"{key}:n", 0) < settings.AK_API["AUTH_FAILURE_LIMIT"]:
        return None
    since = found.get(f"{key}:since", time.time())
    return max(1, int(since + settings.AK_API["AUTH_FAILURE_WINDOW"] - time.time()))


def lockout_failed(request: HttpRequest) -> None:
    """Count a failed authentication from the request's address (atomically: ``incr``)."""
    key, window = _key(request), settings.AK_API["AUTH_FAILURE_WINDOW"]
    cache.add(f"{key}:since", time.time(), timeout=window)
    cache.add(f"{key}:n", 0, timeout=window)
    try:
        cache.incr(f"{key}:n")
    except ValueError:  # expired between the two calls: this failure starts a new window
        cache.set(f"{key}:n", 1, timeout=window)
