"""Failed authentications: too many, and the client that failed waits (429), nobody else.

After ``AK_API__AUTH_FAILURE_LIMIT`` failures within ``AK_API__AUTH_FAILURE_WINDOW`` seconds:

- **API keys**, per client address: a bad key is a 429 with ``Retry-After`` until the window has
  passed; a valid key is always accepted (it is 256 random bits: the lockout stops the flood).
- **Admin logins**, per (address, username), checked *before* the password: while a pair is
  locked a right password is refused like a wrong one, so a guess tells nothing.

Counts live in the default cache (shared when it is Redis). The address is ``REMOTE_ADDR``: behind
a proxy the server must set it from ``X-Forwarded-For`` (gunicorn's ``--forwarded-allow-ips``).
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.http import HttpRequest

from infra.rate_window import window_count, window_peek, window_wait


def _key(request: HttpRequest, username: str | None) -> str:
    address = request.META.get("REMOTE_ADDR", "")
    if username is None:
        return f"auth-failures:api:{address}"
    # hashed: a username is any text of any length, a cache key is not
    user = hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"auth-failures:login:{address}:{user}"


def lockout_wait(request: HttpRequest, *, username: str | None = None) -> int | None:
    """Seconds before the request's client (its address; with ``username``, that login from that
    address) may fail again without a 429, or None when it is not locked out."""
    key = _key(request, username)
    if window_peek(key) < settings.AK_API["AUTH_FAILURE_LIMIT"]:
        return None
    return window_wait(key, settings.AK_API["AUTH_FAILURE_WINDOW"])


def lockout_failed(request: HttpRequest, *, username: str | None = None) -> None:
    """Count a failed authentication of the request's client (atomically: ``incr``)."""
    window_count(_key(request, username), settings.AK_API["AUTH_FAILURE_WINDOW"])
