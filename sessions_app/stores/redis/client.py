"""The connections of a Redis store: django-redis' pool for calls from threads, and one
``redis.asyncio`` client per running event loop (an asyncio connection belongs to the loop that
made it), built from the same URL and options. Every error is translated into the store's.

Keys of one session share a hash tag, so they live on one cluster slot: ``ak:{<tenant>:<session>}:``.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import redis
import redis.asyncio
from django.conf import settings
from django_redis.pool import get_connection_factory

from sessions_app.stores.base import SessionKey, StoreError, StoreUnavailable

T = TypeVar("T")


@contextmanager
def translated() -> Iterator[None]:
    """Turn redis-py's errors into the store's."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise StoreUnavailable(f"redis: {exc}") from exc
    except redis.RedisError as exc:
        raise StoreError(f"redis: {exc}") from exc


def prefix(key: SessionKey) -> str:
    """What every key of the session starts with."""
    return f"ak:{{{key.tenant}:{key.session_id}}}:"


async def _closed_with_loop(client: redis.asyncio.Redis) -> AsyncGenerator[None, None]:
    """Started once per loop: the loop closes it on shutdown (``loop.shutdown_asyncgens``, which
    ``asyncio.run`` and asgiref call), and the client's connections go with their loop."""
    try:
        yield
    finally:
        await client.aclose()


class Connection:
    """The Redis of the ``CACHES`` entry ``cache_alias`` (or at ``url``, with its options)."""

    def __init__(self, *, cache_alias: str = "ak_sessions", url: str | None = None) -> None:
        cache = settings.CACHES[cache_alias]
        self.url = url or cache["LOCATION"]
        self.options = cache.get("OPTIONS", {})
        self._client: redis.Redis | None = None
        self._async_clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[redis.asyncio.Redis, AsyncGenerator[None, None]]
        ] = weakref.WeakKeyDictionary()
        self._async_lock = threading.Lock()

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = get_connection_factory(options=self.options).connect(self.url)
        return self._client

    def call(self, script: Callable[..., T], *, keys: list[str], args: list[Any]) -> T:
        """Run a registered Lua script."""
        with translated():
            return script(keys=keys, args=args, client=self.client)

    async def async_client(self) -> redis.asyncio.Redis:
        """The running loop's asyncio client, made on first use; its socket timeout is left unset
        (an ``XREAD BLOCK`` outwaits any, and is bounded by its caller)."""
        loop = asyncio.get_running_loop()
        with self._async_lock:
            held = self._async_clients.get(loop)
            if held is not None:
                return held[0]
            options: dict[str, Any] = dict(self.options.get("CONNECTION_POOL_KWARGS", {}))
            if self.options.get("SOCKET_CONNECT_TIMEOUT"):
                options["socket_connect_timeout"] = self.options["SOCKET_CONNECT_TIMEOUT"]
            if self.options.get("PASSWORD"):
                options["password"] = self.options["PASSWORD"]
            client = redis.asyncio.Redis.from_url(self.url, **options)
            closer = _closed_with_loop(client)
            self._async_clients[loop] = (client, closer)
        await anext(closer)  # the loop now knows it, and closes it on shutdown
        return client

    def close(self) -> None:
        if self._client is not None:
            self._client.connection_pool.disconnect()
        with self._async_lock:
            held = list(self._async_clients.items())
            self._async_clients.clear()
        for loop, (_, closer) in held:
            if loop.is_running():  # its own thread closes it; a stopped loop does on shutdown
                asyncio.run_coroutine_threadsafe(closer.aclose(), loop)
