"""The httpcore network backend under the model servers' clients: connections to checked addresses."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import socket
from collections.abc import Iterator
from functools import cache
from types import ModuleType
from typing import Any

from agents_app.outbound.addresses import Refused, checked


def core_of(http: ModuleType) -> ModuleType:
    """The ``httpcore`` under ``http`` (``httpx2``, the OpenAI SDK's copy, has ``httpcore2``)."""
    return importlib.import_module(http.__name__.replace("httpx", "httpcore", 1))


@cache
def pinning_backend_class(core: ModuleType) -> type:
    class PinningBackend(core.AsyncNetworkBackend):  # type: ignore[name-defined,misc]
        """An httpcore network backend that resolves the host once per connection, refuses it
        unless every address is public (or ``allow_private``), and connects to the first."""

        def __init__(self, *, allow_private: bool) -> None:
            self._allow_private = allow_private
            self._inner = core.AnyIOBackend()

        async def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: Any = None,
        ) -> Any:
            try:
                async with asyncio.timeout(timeout):
                    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except TimeoutError:
                raise core.ConnectTimeout(f"resolving {host!r} took over {timeout} s") from None
            except (OSError, UnicodeError):
                raise Refused(f"the host {host!r} does not resolve") from None
            address = checked(host, infos, allow_private=self._allow_private)
            return await self._inner.connect_tcp(
                address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
            )

        async def sleep(self, seconds: float) -> None:
            await self._inner.sleep(seconds)

    return PinningBackend


@contextlib.contextmanager
def mapped(http: ModuleType, core: ModuleType) -> Iterator[None]:
    """httpcore's exceptions raised as ``http``'s of the same name, the most specific that ``http``
    has (a ``ReadTimeout`` is an ``http.ReadTimeout``), as httpx's own transport maps them."""
    try:
        yield
    except Exception as exc:
        for kind in type(exc).__mro__:
            if kind.__module__.startswith(core.__name__) and isinstance(getattr(http, kind.__name__, None), type):
                raise getattr(http, kind.__name__)(str(exc)) from exc
        raise
