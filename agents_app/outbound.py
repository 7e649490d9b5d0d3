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
``httpx.AsyncClient`` whose transport does the same for every connection it opens (and an SDK that
takes an ``http_client``, like OpenAI's, gets one). Its pool keys connections on the URL's scheme,
host and port, never on the address: a connection opened (and its certificate verified) for one
host is never reused for another that shares its address. ``shared_client(tenant)`` is a
tenant's client on the running loop: a tenant's calls under way are capped
(``AK_AGENTS__MAX_CONNECTIONS_PER_TENANT``) and wait for the tenant's own, never another's.

An IPv6 address that carries an IPv4 address (``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4
``2002::/16``, IPv4-compatible ``::a.b.c.d``, Teredo ``2001::/32``) is judged as what it carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import importlib
import ipaddress
import socket
import ssl
import urllib.parse
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache, partial
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


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: IPv6 prefixes whose last 32 bits are an IPv4 address the packet goes to: NAT64's well-known
#: prefix (64:ff9b::a9fe:a9fe is 169.254.169.254), IPv4-compatible (::127.0.0.1, deprecated) and
#: IPv4-translated (::ffff:0:a.b.c.d) addresses.
_IPV4_IN_LAST_32_BITS = tuple(ipaddress.IPv6Network(net) for net in ("64:ff9b::/96", "::/96", "::ffff:0:0:0/96"))
#: NAT64's local-use prefix (RFC 8215): where the IPv4 address sits is the network's choice.
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")


def carried(address: IPAddress) -> list[IPAddress]:
    """What ``address`` reaches: the IPv4 address(es) an IPv6 form carries (IPv4-mapped
    ``::ffff:a.b.c.d``, NAT64, 6to4 ``2002::/16``, IPv4-compatible, Teredo ``2001::/32``: its
    server's and its client's), else the address itself."""
    if isinstance(address, ipaddress.IPv4Address):
        return [address]
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        return list(address.teredo)
    if any(address in network for network in _IPV4_IN_LAST_32_BITS):
        return [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    return [address]


def _public(address: IPAddress) -> bool:
    """Whether ``address`` is a public one: judged by the IPv4 address(es) it carries, if any."""
    if isinstance(address, ipaddress.IPv6Address) and address in _LOCAL_NAT64:
        return False
    return all(reached.is_global and not reached.is_multicast for reached in carried(address))


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
#: How long an idle connection to a model server is kept open for the next call.
KEEPALIVE_SECONDS = 5.0
#: Closes under way (see ``_hold``).
_closing: set[asyncio.Task[Any]] = set()
#: Tenants whose clients a loop keeps (beyond them, the least recently used idle ones are closed).
MAX_TENANT_CLIENTS = 100


def _core(http: ModuleType) -> ModuleType:
    """The ``httpcore`` under ``http`` (``httpx2``, the OpenAI SDK's copy, has ``httpcore2``)."""
    return importlib.import_module(http.__name__.replace("httpx", "httpcore", 1))


@cache
def _pinning_backend_class(core: ModuleType) -> type:
    class PinningBackend(core.AsyncNetworkBackend):  # type: ignore[name-defined,misc]
        """An httpcore network backend that opens each connection to an address it checked: the
        host is resolved once, every address it resolves to must be public (unless
        ``allow_private``), and the socket goes to the first of them. The pool above it keys its
        connections on the URL's scheme, host and port, and TLS (server name, certificate) is for
        the URL's host: a connection serves only the host it was opened and verified for."""

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
            address = _checked(host, infos, allow_private=self._allow_private)
            return await self._inner.connect_tcp(
                address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
            )

        async def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:
            raise Refused("only http and https URLs with a host")

        async def sleep(self, seconds: float) -> None:
            await self._inner.sleep(seconds)

    return PinningBackend


#: httpx's exceptions for httpcore's, the more specific first (as httpx's own transport maps them).
_MAPPED = (
    "ConnectTimeout",
    "ReadTimeout",
    "WriteTimeout",
    "PoolTimeout",
    "TimeoutException",
    "ConnectError",
    "ReadError",
    "WriteError",
    "NetworkError",
    "ProxyError",
    "UnsupportedProtocol",
    "RemoteProtocolError",
    "LocalProtocolError",
    "ProtocolError",
)


@contextlib.contextmanager
def _mapped(http: ModuleType, core: ModuleType) -> Iterator[None]:
    """httpcore's exceptions raised as ``http``'s (a ``ReadTimeout`` is an ``http.ReadTimeout``)."""
    try:
        yield
    except Exception as exc:
        for name in _MAPPED:
            if isinstance(exc, getattr(core, name)):
                raise getattr(http, name)(str(exc)) from exc
        raise


class Slots:
    """A share of outbound requests: at most ``cap`` under way at once (a request holds its slot
    until its answer is closed). A tenant's clients on a loop share one."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
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

    _hold(asyncio.get_running_loop().create_task(close()))


def _hold(task: asyncio.Task[Any]) -> None:
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
    core = _core(http)

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
            with _mapped(http, core):
                async for part in self._stream:
                    yield part

        async def aclose(self) -> None:
            self._dropped.detach()
            try:
                with _mapped(http, core):
                    await self._stream.aclose()
            finally:
                self._release()

    class GuardedTransport(http.AsyncBaseTransport):  # type: ignore[name-defined,misc]
        """An httpx transport over one httpcore pool whose connections go only to checked
        addresses (``PinningBackend``: the host resolved once per connection, every address it
        resolves to public unless ``allow_private``, the socket to the address checked) and are
        reused only for the scheme, host and port they were opened and verified for (the pool
        keys on them, the URL is sent as it is: TLS's server name and certificate check are the
        URL's host). At most ``max_connections`` connections are open, and at most that many
        requests under way: a further one waits (up to its pool timeout) for one of its own
        client's to end. A refused URL raises ``Refused`` before anything is sent."""

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
                network_backend=_pinning_backend_class(core)(allow_private=allow_private),
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
                with _mapped(http, core):
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
    **options: Any,
) -> Any:
    """An ``http.AsyncClient`` for model servers: every request checked and sent by
    ``GuardedTransport`` (at most ``max_connections`` at once, and no more than ``slots`` allow
    when given), redirects not followed, ``timeout`` seconds for each step (connect, each read,
    write, and the wait for a connection).
    ``allow_private`` defaults to ``AK_AGENTS__ALLOW_PRIVATE_URLS``; ``verify`` is httpx's (an
    ``ssl.SSLContext`` to trust other CAs)."""
    if allow_private is None:
        allow_private = settings.AK_AGENTS["ALLOW_PRIVATE_URLS"]
    transport = guarded_transport_class(http)(
        allow_private=allow_private, max_connections=max_connections, verify=verify, slots=slots
    )
    return http.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False, **options)


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
    """The running loop's ``guarded_client`` of ``tenant`` for model servers (with the settings'
    timeout and ``ALLOW_PRIVATE_URLS``), made once per loop, tenant and HTTP library: its
    connections are kept alive between runs. A tenant's clients share its
    ``MAX_CONNECTIONS_PER_TENANT`` slots: its calls wait for its own, never for another tenant's.
    ``tenant`` None: calls outside a tenant's run, which share their own. (An httpx client
    belongs to one loop.)

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
        _evict(loop, per_loop, room=1)
        found = per_loop[key] = _Tenant(Slots(cap), {}, loop.time())
    found.used = loop.time()
    per_loop.move_to_end(key)
    client = found.clients.get(http.__name__)
    if client is None:
        client = found.clients[http.__name__] = guarded_client(
            timeout=timeout, allow_private=allow_private, http=http, max_connections=cap, slots=found.slots
        )
    return client


def _evict(loop: asyncio.AbstractEventLoop, per_loop: OrderedDict[tuple[Any, ...], _Tenant], *, room: int) -> None:
    """Close the clients of the least recently used tenants no run may still hold (see
    ``shared_client``), to leave ``room`` for new ones within ``MAX_TENANT_CLIENTS``."""
    over = len(per_loop) + room - MAX_TENANT_CLIENTS
    if over <= 0:
        return
    unused_since = loop.time() - settings.AK_RUN["TIME_LIMIT"]
    done = [key for key, tenant in per_loop.items() if tenant.slots.under_way == 0 and tenant.used <= unused_since]
    for key in done[:over]:
        for client in per_loop.pop(key).clients.values():
            _hold(loop.create_task(client.aclose()))


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
