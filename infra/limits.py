"""Limits per tenant: what a tenant may store, and what it may hold open at once.

    agents, secrets, sessions,     stored objects: over the limit, 403 {"code": "limit_reached", "limit"}
    schedules
    concurrent_runs, event_streams held at once:    over the limit, 429 of the same shape, with Retry-After

A limit is the tenant's own (``Tenant.limit_<name>``) or else the deployment's
(``AK_LIMITS__<NAME>``); ``0`` is unlimited. Stored objects and runs are counted in the database;
open streams take a leased slot in the default cache (``slot_take``), given back when the stream
ends or, should its process die, when the lease lapses.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import QuerySet

STORED = frozenset({"agents", "secrets", "sessions", "schedules"})
HELD = frozenset({"concurrent_runs", "event_streams"})


class LimitReached(Exception):
    """The tenant is at its limit ``limit``: 403 for a stored object, 429 with ``Retry-After``
    for what it holds at once (``agents_app.api.errors`` answers it)."""

    def __init__(self, limit: str) -> None:
        if limit not in STORED | HELD:
            raise ValueError(f"not a limit: {limit!r}")
        self.limit = limit
        self.status = 403 if limit in STORED else 429
        self.retry_after = None if limit in STORED else settings.AK_LIMITS["RETRY_AFTER"]
        super().__init__(f"The tenant's limit of {limit.replace('_', ' ')} is reached.")


def limit_of(tenant: Any, name: str) -> int:
    """The tenant's limit ``name``: its own, else the deployment's; ``0``: unlimited."""
    own = getattr(tenant, f"limit_{name}")
    return settings.AK_LIMITS[name.upper()] if own is None else own


def stored_limit_check(*, tenant: Any, name: str, rows: QuerySet) -> None:
    """Raise ``LimitReached`` (403) when one more of the tenant's ``rows`` (its stored objects of
    ``name``) would be over its limit. Counts at most the limit's number of rows."""
    limit = limit_of(tenant, name)
    if limit and rows.order_by()[:limit].count() >= limit:
        raise LimitReached(name)


@dataclass(frozen=True)
class Slot:
    """One slot taken by ``slot_take``: give it back with ``slot_release``, keep it with
    ``slot_renew``. ``key`` None: the cache did not answer and the limit was not applied."""

    key: str | None
    token: str = ""


def slot_take(*, scope: str, limit: int, lease: float) -> Slot | None:
    """One of ``limit`` slots of ``scope`` (e.g. a tenant's streams), held for ``lease`` s unless
    renewed; None when all are taken. Blocking (the cache's client). A cache that is down lets
    everything through (``Slot(None)``), as the rate limits do."""
    keys = [f"ak:slot:{scope}:{i}" for i in range(limit)]
    held = cache.get_many(keys)
    free = [key for key in keys if key not in held]
    random.shuffle(free)  # processes taking slots at once try different ones first
    token = uuid.uuid4().hex
    for key in free:
        added = cache.add(key, token, timeout=lease)
        if added is None:  # django-redis, its Redis down (IGNORE_EXCEPTIONS)
            return Slot(None)
        if added:
            return Slot(key, token)
    return None


def slots_held(*, scope: str, limit: int) -> int:
    """How many of ``limit`` slots of ``scope`` are held now (0 when the cache does not answer)."""
    return len(cache.get_many([f"ak:slot:{scope}:{i}" for i in range(limit)])) if limit else 0


def slot_renew(slot: Slot, *, lease: float) -> None:
    """Hold ``slot`` for ``lease`` s more."""
    if slot.key is not None:
        cache.touch(slot.key, lease)


def slot_release(slot: Slot) -> None:
    """Give ``slot`` back, unless its lease lapsed and another holder has it now."""
    if slot.key is not None and cache.get(slot.key) == slot.token:
        cache.delete(slot.key)
