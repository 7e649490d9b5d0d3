"""Model servers' connections: one per scheme, host and port, verified for its host, and capped per
tenant; IPv6 addresses that carry an IPv4 one judged as that IPv4.

Real servers on loopback: a TLS server speaking minimal HTTP/1.1 (keep-alive) with certificates of
a local CA made here, which records the server name (SNI) and the ``Host`` of every request, by
connection; and a plain HTTP server whose answers stream until the test lets them end.
"""

from __future__ import annotations

import asyncio
import datetime
import gc
import ipaddress
import ssl
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agents_app import outbound
from agents_app.frameworks import ConfigError, get_framework
from sessions_app.core import SessionView
from sessions_app.stores.base import SessionKey, Snapshot

#: Two names of one loopback address (no /etc/hosts edit needed): a name and the address itself.
HOST_A, HOST_B = "localhost", "127.0.0.1"


# --- a local CA -----------------------------------------------------------------------------------


@dataclass
class CA:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    folder: Path

    @classmethod
    def make(cls, folder: Path) -> CA:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "AK test CA")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert, folder)

    def trusted_by(self) -> ssl.SSLContext:
        """A client's context that trusts this CA only."""
        context = ssl.create_default_context(cadata=self.cert.public_bytes(serialization.Encoding.PEM).decode())
        return context

    def issue(self, host: str) -> tuple[Path, Path]:
        """A certificate for ``host`` (a name, or an IP address), as PEM files: (cert, key)."""
        key = ec.generate_private_key(ec.SECP256R1())
        try:
            san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            san = x509.DNSName(host)
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        cert_file, key_file = self.folder / f"{host}.crt", self.folder / f"{host}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return cert_file, key_file


@pytest.fixture
def ca(tmp_path: Path) -> CA:
    return CA.make(tmp_path)


# --- a TLS server that records what each connection was opened for --------------------------------


@dataclass
class Seen:
    connection: int
    #: The server name the client asked for (None: it sent none, as for an IP address).
    sni: str | None
    #: The host of the certificate the server showed.
    certificate: str
    host: str
    authorization: str | None


@dataclass
class TLSServer:
    """HTTPS on 127.0.0.1 with a certificate per host (picked by SNI; ``default`` without one).
    Answers every request ``200 ok``, keeping the connection open."""

    ca: CA
    hosts: list[str]
    default: str
    seen: list[Seen] = field(default_factory=list)
    port: int = 0

    async def start(self) -> asyncio.Server:
        contexts = {}
        for host in self.hosts:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.ca.issue(host))
            contexts[host] = context
        chosen: dict[int, tuple[str | None, str]] = {}

        def pick(ssl_object: Any, server_name: str | None, _: ssl.SSLContext) -> None:
            host = server_name if server_name in contexts else self.default
            ssl_object.context = contexts[host]
            chosen[id(ssl_object)] = (server_name, host)

        listening = contexts[self.default]
        listening.sni_callback = pick
        for context in contexts.values():
            context.sni_callback = pick
        count = 0

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal count
            count += 1
            connection = count
            sni, certificate = chosen.get(id(writer.get_extra_info("ssl_object")), (None, self.default))
            try:
                while head := await reader.readuntil(b"\r\n\r\n"):
                    lines = head.decode("latin-1").split("\r\n")
                    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
                    await reader.readexactly(int(headers.get("content-length", 0)))
                    host = headers["host"].rsplit(":", 1)[0]
                    self.seen.append(Seen(connection, sni, certificate, host, headers.get("authorization")))
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok")
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=listening)
        self.port = server.sockets[0].getsockname()[1]
        return server

    def url(self, host: str) -> str:
        return f"https://{host}:{self.port}/v1/chat/completions"


def run(work: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(work())


def test_a_second_host_on_one_address_gets_its_own_verified_connection(ca: CA) -> None:
    server = TLSServer(ca, [HOST_A, HOST_B], default=HOST_B)

    async def work() -> None:
        listening = await server.start()
        client = outbound.guarded_client(timeout=10, allow_private=True, verify=ca.trusted_by())
        async with listening, client:
            for host, key in [(HOST_A, "key-of-a"), (HOST_B, "key-of-b"), (HOST_A, "key-of-a"), (HOST_B, "key-of-b")]:
                answer = await client.post(server.url(host), json={}, headers={"Authorization": f"Bearer {key}"})
                assert answer.status_code == 200

    run(work)
    assert [s.host for s in server.seen] == [HOST_A, HOST_B, HOST_A, HOST_B]
    # Each host over its own connection (each reused for that host only), and on every request
    # the server name and certificate were the Host's (TLS sends no name for an IP address).
    by_connection: dict[int, set[str]] = {}
    for seen in server.seen:
        by_connection.setdefault(seen.connection, set()).add(seen.host)
        assert seen.certificate == seen.host
        assert seen.sni == (None if seen.host == HOST_B else seen.host)
    assert sorted(by_connection.values(), key=sorted) == [{HOST_B}, {HOST_A}]
    assert {s.authorization for s in server.seen if s.host == HOST_B} == {"Bearer key-of-b"}


def test_a_server_with_only_the_first_hosts_certificate_is_refused_for_the_second(ca: CA) -> None:
    server = TLSServer(ca, [HOST_A], default=HOST_A)

    async def work() -> None:
        listening = await server.start()
        client = outbound.guarded_client(timeout=10, allow_private=True, verify=ca.trusted_by())
        async with listening, client:
            assert (await client.post(server.url(HOST_A), json={})).status_code == 200
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await client.post(server.url(HOST_B), json={}, headers={"Authorization": "Bearer key-of-b"})
            assert (await client.post(server.url(HOST_A), json={})).status_code == 200  # A's still fine

    run(work)
    assert [s.host for s in server.seen] == [HOST_A, HOST_A]  # B's request never sent


def test_the_openai_sdks_httpx_copy_keeps_hosts_apart_too(ca: CA) -> None:
    httpx2 = pytest.importorskip("httpx2")
    server = TLSServer(ca, [HOST_A], default=HOST_A)

    async def work() -> None:
        listening = await server.start()
        client = outbound.guarded_client(timeout=10, allow_private=True, verify=ca.trusted_by(), http=httpx2)
        async with listening, client:
            assert (await client.post(server.url(HOST_A), json={})).status_code == 200
            with pytest.raises(httpx2.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await client.post(server.url(HOST_B), json={})

    run(work)
    assert [s.host for s in server.seen] == [HOST_A]


# --- connections per tenant -----------------------------------------------------------------------


@dataclass
class HoldingServer:
    """HTTP on 127.0.0.1 whose answer to ``/<name>`` streams a first piece at once and its end only
    when the test calls ``release(name)``. ``arrived`` lists the names in the order they came."""

    arrived: list[str] = field(default_factory=list)
    gates: dict[str, asyncio.Event] = field(default_factory=dict)
    port: int = 0

    def gate(self, name: str) -> asyncio.Event:
        return self.gates.setdefault(name, asyncio.Event())

    def release(self, name: str) -> None:
        self.gate(name).set()

    async def start(self) -> asyncio.Server:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while head := await reader.readuntil(b"\r\n\r\n"):
                    lines = head.decode("latin-1").split("\r\n")
                    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
                    await reader.readexactly(int(headers.get("content-length", 0)))
                    name = lines[0].split()[1].strip("/")
                    self.arrived.append(name)
                    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
                    await writer.drain()
                    await self.gate(name).wait()
                    writer.write(b"4\r\nlast\r\n0\r\n\r\n")
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        return server

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"


async def held_call(server: HoldingServer, tenant: str, name: str, started: asyncio.Event | None = None) -> bytes:
    """A tenant's streamed call to ``/<name>``, through its shared client: the whole answer."""
    async with outbound.shared_client(tenant).stream("POST", server.url(name), json={}) as answer:
        body = b""
        async for piece in answer.aiter_bytes():
            body += piece
            if started is not None:
                started.set()
        return body


def test_a_tenant_at_its_cap_waits_for_its_own_calls_never_delaying_another(settings) -> None:
    settings.AK_AGENTS = {**settings.AK_AGENTS, "ALLOW_PRIVATE_URLS": True, "MAX_CONNECTIONS_PER_TENANT": 2}
    server = HoldingServer()

    async def work() -> None:
        async with await server.start():
            started = [asyncio.Event(), asyncio.Event()]
            held = [asyncio.create_task(held_call(server, "alice", f"alice-{i}", started[i])) for i in range(2)]
            for event in started:
                await event.wait()  # alice's two calls are under way, their answers held
            extra = asyncio.create_task(held_call(server, "alice", "alice-extra"))
            server.release("bob")
            assert await held_call(server, "bob", "bob") == b"firstlast"  # bob is not kept waiting
            assert not any(task.done() for task in [*held, extra])
            # alice's two calls came first, in whichever order their connections opened; her third waits
            assert sorted(server.arrived[:2]) == ["alice-0", "alice-1"]
            assert server.arrived[2:] == ["bob"]
            server.release("alice-extra")
            server.release("alice-1")
            assert await held[1] == b"firstlast"
            assert await extra == b"firstlast"  # sent once alice-1 gave its connection back
            assert server.arrived[2:] == ["bob", "alice-extra"]
            assert not held[0].done()
            server.release("alice-0")
            assert await held[0] == b"firstlast"

    run(work)


def test_a_tenants_clients_of_both_http_libraries_share_its_cap(settings) -> None:
    httpx2 = pytest.importorskip("httpx2")
    settings.AK_AGENTS = {**settings.AK_AGENTS, "ALLOW_PRIVATE_URLS": True, "MAX_CONNECTIONS_PER_TENANT": 1}
    server = HoldingServer()

    async def via_sdk_copy(name: str) -> bytes:
        async with outbound.shared_client("alice", http=httpx2).stream("POST", server.url(name), json={}) as answer:
            return await answer.aread()

    async def work() -> None:
        async with await server.start():
            started = asyncio.Event()
            first = asyncio.create_task(held_call(server, "alice", "alice-0", started))
            await started.wait()
            second = asyncio.create_task(via_sdk_copy("alice-1"))
            server.release("bob")
            assert await held_call(server, "bob", "bob") == b"firstlast"
            assert server.arrived == ["alice-0", "bob"] and not second.done()
            server.release("alice-1")
            server.release("alice-0")
            assert await first == b"firstlast"
            assert await second == b"firstlast"
            assert server.arrived == ["alice-0", "bob", "alice-1"]

    run(work)


def test_a_tenant_waiting_past_the_timeout_gets_a_pool_timeout(settings) -> None:
    settings.AK_AGENTS = {
        **settings.AK_AGENTS,
        "ALLOW_PRIVATE_URLS": True,
        "MAX_CONNECTIONS_PER_TENANT": 1,
        "TIMEOUT": 0.2,
    }
    server = HoldingServer()

    async def work() -> None:
        async with await server.start():
            async with outbound.shared_client("alice").stream("POST", server.url("alice-0"), json={}) as answer:
                assert answer.status_code == 200  # its answer is open (not read: no read to time out)
                with pytest.raises(httpx.PoolTimeout):
                    await held_call(server, "alice", "alice-1")
            server.release("alice-2")
            assert await held_call(server, "alice", "alice-2") == b"firstlast"  # closed: free again
            assert server.arrived == ["alice-0", "alice-2"]

    run(work)


def test_the_adapters_call_through_their_tenants_connections(model_server, settings) -> None:
    """openai_chat (httpx) and openai_agents (the SDK's httpx2) runs of one tenant share its cap;
    another tenant's run goes on while they wait."""
    pytest.importorskip("agents")
    from agents_app.frameworks import AgentSpec
    from agents_app.frameworks.openai_agents import OpenAIAgentsFramework
    from agents_app.frameworks.openai_chat import OpenAIChatFramework

    settings.AK_AGENTS = {**settings.AK_AGENTS, "ALLOW_PRIVATE_URLS": True, "MAX_CONNECTIONS_PER_TENANT": 1}
    arrived, release = threading.Event(), threading.Event()

    def answer(body: dict[str, Any]) -> None:
        if body["messages"][-1]["content"] == "hold":
            arrived.set()
            release.wait(30)
        return None  # the default reply

    model_server.reply_with(answer)
    config = {"base_url": model_server.url, "model": "m1"}
    chat, agents = AgentSpec("chat", "openai_chat", config), AgentSpec("sdk", "openai_agents", config)

    def view(tenant: str) -> SessionView:
        snapshot = Snapshot(version=0, messages=[], offset=0, total=0, role_counts={}, state={})
        return SessionView(snapshot, "bot", key=SessionKey(tenant=tenant, session_id="s1"))

    def sent() -> list[str]:
        return [r.body["messages"][-1]["content"] for r in model_server.requests if r.body]

    async def work() -> None:
        held = asyncio.create_task(OpenAIChatFramework().run(chat, view("alice"), "hold"))
        await asyncio.to_thread(arrived.wait, 30)
        later = asyncio.create_task(OpenAIAgentsFramework().run(agents, view("alice"), "later"))
        other = await OpenAIAgentsFramework().run(agents, view("bob"), "hi")
        assert other.text == "reply to: hi"  # bob's run is not kept waiting
        assert sent() == ["hold", "hi"] and not held.done() and not later.done()
        release.set()
        assert (await held).text == "reply to: hold"
        assert (await later).text == "reply to: later"  # sent once alice's first call ended
        assert sent() == ["hold", "hi", "later"]

    try:
        run(work)
    finally:
        release.set()


def test_an_answer_dropped_unclosed_gives_its_connection_back(settings) -> None:
    limits = {"ALLOW_PRIVATE_URLS": True, "MAX_CONNECTIONS_PER_TENANT": 1, "TIMEOUT": 10.0}  # a failure: PoolTimeout
    settings.AK_AGENTS = {**settings.AK_AGENTS, **limits}
    server = HoldingServer()

    async def work() -> None:
        async with await server.start():
            client = outbound.shared_client("alice")
            answer = await client.send(client.build_request("POST", server.url("dropped"), json={}), stream=True)
            assert answer.status_code == 200
            del answer  # never read nor closed
            gc.collect()
            server.release("next")
            assert await held_call(server, "alice", "next") == b"firstlast"
            assert server.arrived == ["dropped", "next"]
            server.release("dropped")

    run(work)


def test_a_loop_keeps_a_bounded_number_of_tenants_clients(settings) -> None:
    settings.AK_AGENTS = {**settings.AK_AGENTS, "ALLOW_PRIVATE_URLS": True}
    settings.AK_RUN = {**settings.AK_RUN, "TIME_LIMIT": 0}  # no run may still hold an idle client
    server = HoldingServer()

    async def work() -> None:
        async with await server.start():
            started = asyncio.Event()
            busy = asyncio.create_task(held_call(server, "busy", "busy", started))
            await started.wait()
            first = {f"t{i}": outbound.shared_client(f"t{i}") for i in range(outbound.MAX_TENANT_CLIENTS - 1)}
            assert len({id(c) for c in first.values()}) == len(first)
            outbound.shared_client("one-more")  # over the bound: the least recently used idle one goes
            for _ in range(100):
                if first["t0"].is_closed:
                    break
                await asyncio.sleep(0)
            assert first["t0"].is_closed and not first["t1"].is_closed
            assert outbound.shared_client("t0") is not first["t0"]  # made again when needed
            assert outbound.shared_client("t2") is first["t2"]
            server.release("busy")
            assert await busy == b"firstlast"  # the busy tenant, least recently asked for, was kept

    run(work)


# --- IPv6 addresses that carry IPv4 ones ----------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://[64:ff9b::a9fe:a9fe]/v1",  # NAT64 of 169.254.169.254 (a cloud's metadata service)
        "http://[64:ff9b::7f00:1]/v1",  # NAT64 of 127.0.0.1
        "http://[64:ff9b:1::a00:1]/v1",  # NAT64's local-use prefix
        "http://[2002:7f00:1::]/v1",  # 6to4 of 127.0.0.1
        "http://[2002:a00:1::1]/v1",  # 6to4 of 10.0.0.1
        "http://[::127.0.0.1]/v1",  # IPv4-compatible
        "http://[::a9fe:a9fe]/v1",
        "http://[::ffff:0:a00:1]/v1",  # IPv4-translated 10.0.0.1
        "http://[::ffff:169.254.169.254]/v1",  # IPv4-mapped
        "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/v1",  # Teredo, its client 192.0.2.45
        "http://[2001:0:a00:1::f7f7:f7f7]/v1",  # Teredo through a server at 10.0.0.1
    ],
)
def test_ipv6_forms_of_private_ipv4_addresses_are_refused(url: str, settings) -> None:
    settings.AK_AGENTS = {**settings.AK_AGENTS, "ALLOW_PRIVATE_URLS": False}
    with pytest.raises(outbound.Refused, match="non-public"):
        outbound.resolve(url, allow_private=False)  # webhooks
    with pytest.raises(ConfigError, match="non-public"):  # model servers, when an agent is saved
        get_framework("openai_chat").check_runnable({"base_url": url, "model": "m"})

    async def call() -> None:  # and when a run calls it
        async with outbound.guarded_client(timeout=5, allow_private=False) as client:
            await client.post(url, json={})

    with pytest.raises(outbound.Refused, match="non-public"):
        run(call)


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::808:808",  # NAT64 of 8.8.8.8
        "2002:808:808::1",  # 6to4 of 8.8.8.8
        "::808:808",  # IPv4-compatible 8.8.8.8
        "::ffff:808:808",  # IPv4-mapped 8.8.8.8
        "2001:0:808:808::f7f7:f7f7",  # Teredo, server and client 8.8.8.8
        "2606:4700:4700::1111",  # a plain public IPv6 address
    ],
)
def test_their_public_counterparts_are_allowed(address: str) -> None:
    target = outbound.resolve(f"http://[{address}]/v1", allow_private=False)
    assert ipaddress.ip_address(target.address) == ipaddress.ip_address(address)
