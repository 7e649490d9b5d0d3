"""The API keys a process looked up, remembered only while no key or tenant has changed anywhere.

A process remembers a key (with its tenant) together with the **generation** it read from the
shared cache, and any change to an API key or a tenant writes a new generation once committed:
every process's next request sees it and reads the row again, so a revoked key is never let
through elsewhere. Only where the default cache is shared (Redis); otherwise, or while it does not
answer, every request looks its key up. An entry lasts at most ``AK_API__KEY_CACHE_SECONDS``
(``0``: never remembered), which bounds what a change made while the cache was down leaves.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.locmem import LocMemCache
from django.db import transaction

from sessions_app.models import ApiKey

GENERATION_KEY = "api-keys:generation"
MAX_ENTRIES = 10_000

#: key hash -> (generation, monotonic time, the key with its tenant, or None for an unknown key)
_entries: dict[str, tuple[str, float, ApiKey | None]] = {}


def _shared() -> bool:
    return not isinstance(caches["default"], LocMemCache)  # the backend, not ``cache``'s proxy


def _generation() -> str | None:
    """The shared generation (made when missing), or None when there is none to trust."""
    generation = cache.get(GENERATION_KEY)
    if generation is None:
        cache.add(GENERATION_KEY, uuid.uuid4().hex, timeout=None)
        generation = cache.get(GENERATION_KEY)
    return generation if isinstance(generation, str) else None


def cached_key(key_hash: str, load: Callable[[], ApiKey | None]) -> ApiKey | None:
    """The live key of ``key_hash`` with its tenant (None: no such live key): remembered from an
    earlier request of this process while the shared generation is unchanged, else ``load()``."""
    ttl = settings.AK_API["KEY_CACHE_SECONDS"]
    generation = _generation() if ttl > 0 and _shared() else None
    if generation is None:
        return load()
    entry = _entries.get(key_hash)
    if entry is not None and entry[0] == generation and time.monotonic() - entry[1] < ttl:
        return entry[2]
    key = load()
    if len(_entries) >= MAX_ENTRIES:
        _entries.clear()
    _entries[key_hash] = (generation, time.monotonic(), key)
    return key


def keys_changed(sender: type, instance: Any, **kwargs: Any) -> None:
    """``post_save``/``post_delete`` of an ApiKey or a Tenant: this process forgets every key at
    once, and every process at its next request, once the change is committed (a process that read
    the row before the commit remembered it under the old generation)."""
    _entries.clear()
    transaction.on_commit(lambda: cache.set(GENERATION_KEY, uuid.uuid4().hex, timeout=None))
