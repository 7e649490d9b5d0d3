"""Failed authentications: too many, and the client that failed waits (429), nobody else.

A correct credential is never refused because of failures it did not make:

- **API keys** are counted per client address. The key is looked up first: a valid key is always
  accepted, whatever its address did. A bad key from an address with
  ``AK_API__AUTH_FAILURE_LIMIT`` failures within ``AK_API__AUTH_FAILURE_WINDOW`` seconds is
  answered 429 with ``Retry-After`` (no longer 401) until the window that began with its first
  failure has passed. A locked address can tell a right key from a wrong one (200, not 429): a key
  is 256 random bits, so guessing is hopeless anyway; the lockout stops the flood, not the guess.
- **Admin logins** are counted per (client address, username), and checked *before* the password:
  a password can be guessed, so while a pair is locked a right password is refused like a wrong
  one and a guess tells nothing. Another user's login from the same address, and the same user's
  from another address, are not affected.

Counts live in the default cache: shared by every process when it is Redis (``AK_CACHE__URL``),
per process otherwise. The address is the request's ``REMOTE_ADDR``; behind a proxy the server
must set it from the proxy's ``X-Forwarded-For`` (gunicorn's ``--forwarded-allow-ips``, see the
README's Deployment), or every client shares the proxy's address.
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
