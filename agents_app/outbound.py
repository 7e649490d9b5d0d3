"""Requests the platform sends on a tenant's behalf (webhooks, model servers), to public addresses only.

A tenant names the URL, so the platform must not become its way into the platform's own network.
``post`` resolves the host once, refuses unless every address it resolves to is public, and
connects to the address it checked (the ``Host`` header and TLS's server name stay the URL's
host, and the certificate is verified against it): a name that resolves elsewhere a moment later
(DNS rebinding) changes nothing. Redirects are not followed (a 3xx is an answer like any other),
the body read back is capped, and every step has a timeout.

    answer = post("https://hooks.example.com/ak", body, headers={...}, timeout=10)
    answer.status   # 200

Model servers are called with ``httpx``, on the event loop: ``guarded_client()`` is an
``httpx.AsyncClient`` whose transport does the same for every request it sends (and an SDK that
takes an ``http_client``, like OpenAI's, gets one).
"""

from __future__ import annotations

import asyncio
import http.client
import ipaddress
import socket
import ssl
import urllib.parse
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

import httpx
from django.conf import settings

#: What is read of an answer's body at most.
MAX_ANSWER_BYTES = 64 * 1024


class Refused(Exception):
    """The URL is not one the platform will call; the message says why."""


class Unresolved(Refused):
    """The URL's host does not resolve (now): nothing to call, and nothing refused for good."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


@dataclass(frozen=True)
class Target:
    """A URL checked for a request: its scheme, host, port, path and the address to connect to."""

    scheme: str
    host: str
    port: int
    path: str
    address: str


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return address.is_global and not address.is_multicast


def resolve(url: str, *, allow_private: bool | None = None) -> Target:
    """Check ``url`` and pick the address to connect to; raises ``Refused``.

    ``allow_private`` (default ``AK_RUN__WEBHOOK_ALLOW_PRIVATE``) lets loopback, private and
    link-local addresses through, for development. Any spelling of an address (``0.0.0.0``,
    ``2130706433``, ``0177.0.0.1``, ``[::ffff:127.0.0.1]``) is judged by what it resolves to.
    """
    if allow_private is None:
        allow_private = settings.AK_RUN["WEBHOOK_ALLOW_PRIVATE"]
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused(f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused("only http and https URLs with a host")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise Unresolved(f"the host {parts.hostname!r} does not resolve") from None
    address = _checked(parts.hostname, infos, allow_private=allow_private)
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    return Target(parts.scheme, parts.hostname, port, path, address)


def _checked(host: str, infos: Sequence[tuple[Any, ...]], *, allow_private: bool) -> str:
    """The address to connect to, of those ``host`` resolved to (``getaddrinfo``'s answer), once
    every one of them is judged public; raises ``Refused``."""
    addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
    if not addresses:
        raise Refused(f"the host {host!r} does not resolve")
    if not allow_private:
        for address in addresses:
            if not _public(address):
                raise Refused(f"{host} resolves to {address}, a non-public address")
    return str(addresses[0])


def refusal(url: str) -> str | None:
    """Why the platform will not call ``url``, or None (checked again when it calls). A host that
    does not resolve yet is not a reason: the call resolves it again, and refuses it then."""
    try:
        resolve(url)
    except Unresolved:
        return None
    except Refused as exc:
        return str(exc)
    return None


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to ``address``, with the URL's host as the server name and the certificate's name."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=ssl.create_default_context())
        self._address = target.address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


class _PinnedHTTP(http.client.HTTPConnection):
    """HTTP to ``address``, with the URL's host in the ``Host`` header."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


def post(
    url: str, body: bytes, *, headers: dict[str, str], timeout: float, allow_private: bool | None = None
) -> Answer:
    """POST ``body`` to ``url`` (see the module's docstring). Raises ``Refused``, and ``OSError``
    (``TimeoutError``, ``ConnectionError``, ``ssl.SSLError``...) when the peer cannot be reached."""
    return post_to(resolve(url, allow_private=allow_private), body, headers=headers, timeout=timeout)


def post_to(target: Target, body: bytes, *, headers: dict[str, str], timeout: float) -> Answer:
    """``post`` to a target ``resolve`` checked."""
    pinned = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    connection = pinned(target, timeout)
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        return Answer(response.status, response.read(MAX_ANSWER_BYTES))
    except http.client.HTTPException as exc:
        raise ConnectionError(f"{type(exc).__name__}: {exc}") from exc
    finally:
        connection.close()


#: What is read of a model server's answer at most (a streamed answer counts as it comes).
MAX_MODEL_ANSWER_BYTES = 8 * 1024 * 1024


@cache
def guarded_transport_class(http: ModuleType = httpx) -> type:
    """``GuardedTransport`` for ``http``: ``httpx``, or a module with its API (OpenAI's SDK
    ships its own copy, ``httpx2``, and takes only its clients)."""

    class GuardedTransport(http.AsyncBaseTransport):  # type: ignore[name-defined,misc]
        """An httpx transport that sends each request to the address it checked: the URL's host
        is resolved once on the loop, every address it resolves to must be public (unless
        ``allow_private``), and the connection goes to that address, the ``Host`` header and TLS's
        server name (and certificate check) staying the URL's host. A refused URL raises
        ``Refused`` before anything is sent."""

        def __init__(self, *, allow_private: bool, **options: Any) -> None:
            self._allow_private = allow_private
            self._inner = http.AsyncHTTPTransport(**options)

        async def handle_async_request(self, request: Any) -> Any:
            url = request.url
            if url.scheme not in ("http", "https") or not url.host:
                raise Refused("only http and https URLs with a host")
            port = url.port or (443 if url.scheme == "https" else 80)
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(url.host, port, type=socket.SOCK_STREAM)
            except (OSError, UnicodeError):
                raise Refused(f"the host {url.host!r} does not resolve") from None
            address = _checked(url.host, infos, allow_private=self._allow_private)
            request.url = url.copy_with(host=address)  # the Host header was set from the URL's host
            request.extensions = {**request.extensions, "sni_hostname": url.host}
            return await self._inner.handle_async_request(request)

        async def aclose(self) -> None:
            await self._inner.aclose()

    return GuardedTransport


def guarded_client(
    *, timeout: float, allow_private: bool | None = None, http: ModuleType = httpx, **options: Any
) -> Any:
    """An ``http.AsyncClient`` for model servers: every request checked by ``GuardedTransport``,
    redirects not followed, ``timeout`` seconds for each step (connect, each read, write).
    ``allow_private`` defaults to ``AK_AGENTS__ALLOW_PRIVATE_URLS``."""
    if allow_private is None:
        allow_private = settings.AK_AGENTS["ALLOW_PRIVATE_URLS"]
    transport = guarded_transport_class(http)(allow_private=allow_private)
    return http.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False, **options)


_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, bool, float], Any]]
_clients = weakref.WeakKeyDictionary()


def shared_client(http: ModuleType = httpx) -> Any:
    """The running loop's ``guarded_client`` for model servers (with the settings' timeout and
    ``ALLOW_PRIVATE_URLS``), made once per loop: its connections are kept alive between runs, as
    a process makes many calls to few servers. (An httpx client belongs to one loop.)"""
    loop = asyncio.get_running_loop()
    allow_private, timeout = settings.AK_AGENTS["ALLOW_PRIVATE_URLS"], settings.AK_AGENTS["TIMEOUT"]
    per_loop = _clients.setdefault(loop, {})
    options = (http.__name__, allow_private, timeout)
    client = per_loop.get(options)
    if client is None:
        client = per_loop[options] = guarded_client(timeout=timeout, allow_private=allow_private, http=http)
    return client


def model_url_refusal(url: str) -> str | None:
    """Why the platform will not call a model server at ``url`` (its ``base_url``), or None (a
    host that does not resolve yet is checked again by each run, which fails then)."""
    try:
        resolve(url, allow_private=settings.AK_AGENTS["ALLOW_PRIVATE_URLS"])
    except Unresolved:
        return None
    except Refused as exc:
        return str(exc)
    return None
