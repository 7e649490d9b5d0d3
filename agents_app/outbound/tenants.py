"""``shared_client(tenant)``: a tenant's model-server client on the running loop. A tenant's calls
under way are capped (``AK_AGENTS__MAX_CONNECTIONS_PER_TENANT``) and wait for its own, never another's.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import httpx
from django.conf import settings

from agents_app.outbound.transport import Slots, guarded_client, hold

#: Tenants whose clients a loop keeps (beyond them, the least recently used idle ones are closed).
MAX_TENANT_CLIENTS = 100


@dataclass
class _Tenant:
    """A tenant's clients on one loop (one per HTTP library), sharing the tenant's slots."""

    slots: Slots
    clients: dict[str, Any]
    #: When a run last asked for one of them (the loop's clock).
    used: float


_tenants: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, OrderedDict[tuple[Any, ...], _Tenant]]
_tenants = weakref.WeakKeyDictionary()


def shared_client(tenant: str | None, http: ModuleType = httpx) -> Any:
    """The running loop's ``guarded_client`` of ``tenant`` (None: calls outside a tenant's run),
    made once per loop, tenant and HTTP library, sharing the tenant's slots (see the module).

    A loop keeps the clients of ``MAX_TENANT_CLIENTS`` tenants: beyond, the least recently used
    are closed, of those with no call under way and not asked for within ``AK_RUN__TIME_LIMIT``
    (a run still going may hold its client between two calls; no run lasts longer)."""
    loop = asyncio.get_running_loop()
    cfg = settings.AK_AGENTS
    allow_private, timeout, cap = cfg["ALLOW_PRIVATE_URLS"], cfg["TIMEOUT"], cfg["MAX_CONNECTIONS_PER_TENANT"]
    per_loop = _tenants.setdefault(loop, OrderedDict())
    key = (tenant, allow_private, timeout, cap)
    found = per_loop.get(key)
    if found is None:
        _evict(loop, per_loop)
        found = per_loop[key] = _Tenant(Slots(cap), {}, loop.time())
    found.used = loop.time()
    per_loop.move_to_end(key)
    client = found.clients.get(http.__name__)
    if client is None:
        client = found.clients[http.__name__] = guarded_client(
            timeout=timeout, allow_private=allow_private, http=http, max_connections=cap, slots=found.slots
        )
    return client


def _evict(loop: asyncio.AbstractEventLoop, per_loop: OrderedDict[tuple[Any, ...], _Tenant]) -> None:
    """Close the clients of the least recently used tenants no run may still hold (see
    ``shared_client``), to leave room for a new one within ``MAX_TENANT_CLIENTS``."""
    over = len(per_loop) + 1 - MAX_TENANT_CLIENTS
    if over <= 0:
        return
    unused_since = loop.time() - settings.AK_RUN["TIME_LIMIT"]
    done = [key for key, tenant in per_loop.items() if tenant.slots.under_way == 0 and tenant.used <= unused_since]
    for key in done[:over]:
        for client in per_loop.pop(key).clients.values():
            hold(loop.create_task(client.aclose()))
