"""``guarded_client()``: an ``httpx.AsyncClient`` for model servers, on the event loop.

Its transport opens every connection to a checked address and keys its pool on the URL's scheme,
host and port, never on the address: a connection opened (and its certificate verified) for one
host is never reused for another that shares its address. Requests under way are capped by ``Slots``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import weakref
from collections.abc import AsyncIterator, Callable
from functools import cache, partial
from types import ModuleType
from typing import Any

import httpx
from django.conf import settings

from agents_app.outbound.addresses import Refused
from agents_app.outbound.network import core_of, mapped, pinning_backend_class

#: What is read of a model server's answer at most (a streamed answer counts as it comes).
MAX_MODEL_ANSWER_BYTES = 8 * 1024 * 1024
#: How long an idle connection to a model server is kept open for the next call.
KEEPALIVE_SECONDS = 5.0
#: Closes under way (see ``hold``).
_closing: set[asyncio.Task[Any]] = set()


class Slots:
    """A share of outbound requests: at most ``cap`` under way at once (a request holds its slot
    until its answer is closed). A tenant's clients on a loop share one."""

    def __init__(self, cap: int) -> None:
        self.under_way = 0
        self._free = asyncio.Semaphore(cap)

    async def take(self, timeout: float | None) -> bool:
        """Wait for a slot, at most ``timeout`` seconds: whether one was taken."""
        try:
            async with asyncio.timeout(timeout):
                await self._free.acquire()
        except TimeoutError:
            return False
        self.under_way += 1
        return True

    def give_back(self) -> None:
        self.under_way -= 1
        self._free.release()


def _on_loop(loop: asyncio.AbstractEventLoop, call: Callable[[], None]) -> None:
    """``call`` on ``loop``, from any thread (a garbage collection's), unless the loop is closed."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(call)


def _close_dropped(stream: Any, release: Callable[[], None]) -> None:
    """Close the httpcore stream of an answer dropped unclosed (its connection back to the pool,
    or closed), and give its slot back."""

    async def close() -> None:
        try:
            await stream.aclose()
        finally:
            release()

    hold(asyncio.get_running_loop().create_task(close()))


def hold(task: asyncio.Task[Any]) -> None:
    """Keep ``task`` until it is done (the loop holds its tasks only weakly)."""
    _closing.add(task)
    task.add_done_callback(_closing.discard)


@cache
def _default_ssl_context(http: ModuleType) -> ssl.SSLContext:
    """httpx's default context (its CA bundle, loaded once per process rather than per client)."""
    return http.create_ssl_context()


@cache
def guarded_transport_class(http: ModuleType = httpx) -> type:
    """``GuardedTransport`` for ``http``: ``httpx``, or a module with its API (OpenAI's SDK
    ships its own copy, ``httpx2``, and takes only its clients)."""
    core = core_of(http)

    class Answer(http.AsyncByteStream):  # type: ignore[name-defined,misc]
        """An answer's body, read through; closing it gives its slot back (and so does its
        garbage collection, should a caller drop it unclosed)."""

        def __init__(self, stream: Any, release: Callable[[], None]) -> None:
            self._stream = stream
            self._release = release
            closing = partial(_close_dropped, stream, release)
            self._dropped = weakref.finalize(self, _on_loop, asyncio.get_running_loop(), closing)
            self._dropped.atexit = False

        async def __aiter__(self) -> AsyncIterator[bytes]:
            with mapped(http, core):
                async for part in self._stream:
                    yield part

        async def aclose(self) -> None:
            self._dropped.detach()
            try:
                with mapped(http, core):
                    await self._stream.aclose()
            finally:
                self._release()

    class GuardedTransport(http.AsyncBaseTransport):  # type: ignore[name-defined,misc]
        """An httpx transport over one httpcore pool (see the module): no more requests under way
        than ``slots`` allow, a further one waits (up to its pool timeout) for one of its share's
        to end. A refused URL raises ``Refused`` before anything is sent."""

        def __init__(
            self,
            *,
            allow_private: bool,
            max_connections: int = 100,
            verify: ssl.SSLContext | bool = True,
            slots: Slots | None = None,
        ) -> None:
            self._pool = core.AsyncConnectionPool(
                ssl_context=_default_ssl_context(http) if verify is True else http.create_ssl_context(verify=verify),
                max_connections=max_connections,
                max_keepalive_connections=max_connections,
                keepalive_expiry=KEEPALIVE_SECONDS,
                network_backend=pinning_backend_class(core)(allow_private=allow_private),
            )
            self._slots = slots or Slots(max_connections)

        async def handle_async_request(self, request: Any) -> Any:
            url = request.url
            if url.scheme not in ("http", "https") or not url.host:
                raise Refused("only http and https URLs with a host")
            extensions = {k: v for k, v in request.extensions.items() if k != "sni_hostname"}  # the URL's host
            if not await self._slots.take((extensions.get("timeout") or {}).get("pool")):
                raise http.PoolTimeout("every connection of this client's share is in use", request=request)
            released = False

            def release() -> None:
                nonlocal released
                if not released:
                    released = True
                    self._slots.give_back()

            try:
                sent = core.Request(
                    method=request.method,
                    url=core.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
                    headers=request.headers.raw,
                    content=request.stream,
                    extensions=extensions,
                )
                with mapped(http, core):
                    answer = await self._pool.handle_async_request(sent)
            except BaseException:
                release()
                raise
            return http.Response(
                status_code=answer.status,
                headers=answer.headers,
                stream=Answer(answer.stream, release),
                extensions=answer.extensions,
            )

        async def aclose(self) -> None:
            await self._pool.aclose()

    return GuardedTransport


def guarded_client(
    *,
    timeout: float,
    allow_private: bool | None = None,
    http: ModuleType = httpx,
    max_connections: int = 100,
    verify: ssl.SSLContext | bool = True,
    slots: Slots | None = None,
) -> Any:
    """An ``http.AsyncClient`` for model servers over ``GuardedTransport``: redirects not followed,
    ``timeout`` seconds for each step. ``allow_private`` defaults to ``AK_AGENTS__ALLOW_PRIVATE_URLS``;
    ``verify`` is httpx's (an ``ssl.SSLContext`` to trust other CAs)."""
    if allow_private is None:
        allow_private = settings.AK_AGENTS["ALLOW_PRIVATE_URLS"]
    transport = guarded_transport_class(http)(
        allow_private=allow_private, max_connections=max_connections, verify=verify, slots=slots
    )
    return http.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False)
