"""The store registry: ``get_store()`` builds the configured backend once per process.

Backends are named in ``settings.AK_SESSION_BACKENDS`` by dotted path, as Django names cache
backends. An ``in_memory`` store that another process keeps (``AK_SESSION__IN_MEMORY__SOCKET``)
is reached through ``memory_socket.SocketMemoryStore``. ``get_event_log()`` is ``get_store()``.
With ``AK_SESSION__ENCRYPTION_KEY`` set, each store gets the ``sealing.Sealer`` of its keys.
"""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from sessions_app.stores.base import SessionStore
from sessions_app.stores.events import EventLog
from sessions_app.stores.sealing import sealer_from_settings

_lock = threading.Lock()
_store: SessionStore | None = None


def build_store(store_type: str | None = None, **overrides: Any) -> SessionStore:
    """A new store of ``store_type`` (default: the configured one), with options overridden."""
    config = settings.AK_SESSION
    store_type = store_type or config["TYPE"]
    path = settings.AK_SESSION_BACKENDS[store_type]
    options: dict[str, Any] = {"ttl": config["TTL"]}
    if store_type == "in_memory" and config["IN_MEMORY"]["SOCKET"]:
        path = "sessions_app.stores.memory_socket.SocketMemoryStore"
        options["socket"] = config["IN_MEMORY"]["SOCKET"]
    elif store_type == "in_memory":
        options["max_sessions"] = config["IN_MEMORY"]["MAX_SESSIONS"]
    elif store_type == "dynamodb":
        dynamo = config["DYNAMODB"]
        options.update(table_name=dynamo["TABLE_NAME"], endpoint_url=dynamo["ENDPOINT_URL"], region=dynamo["REGION"])
    sealer = sealer_from_settings()
    if sealer.enabled:  # a backend that cannot seal fails here, loudly
        options["sealer"] = sealer
    return import_string(path)(**{**options, **overrides})


def get_store() -> SessionStore:
    """The process-wide store of the configured type."""
    global _store
    if _store is None:
        with _lock:
            if _store is None:
                _store = build_store()
    return _store


def get_event_log() -> EventLog:
    """The process-wide event logs: those of the configured store."""
    store = get_store()
    if not isinstance(store, EventLog):
        raise ImproperlyConfigured(f"the {store.name} session store keeps no event logs")
    return store


def reset_store(store: SessionStore | None = None) -> None:
    """Replace the process-wide store (tests, and settings changes)."""
    global _store
    with _lock:
        if _store is not None and _store is not store:
            _store.close()
        _store = store


__all__ = ["build_store", "get_event_log", "get_store", "reset_store"]
