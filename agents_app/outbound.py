"""Requests the platform sends on a tenant's behalf (webhooks), to public addresses only.

A tenant names the URL, so the platform must not become its way into the platform's own network.
``post`` resolves the host once, refuses unless every address it resolves to is public, and
connects to the address it checked (the ``Host`` header and TLS's server name stay the URL's
host, and the certificate is verified against it): a name that resolves elsewhere a moment later
(DNS rebinding) changes nothing. Redirects are not followed (a 3xx is an answer like any other),
the body read back is capped, and every step has a timeout.

    answer = post("https://hooks.example.com/ak", body, headers={...}, timeout=10)
    answer.status   # 200
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import urllib.parse
from dataclasses import dataclass

from django.conf import settings

#: What is read of an answer's body at most.
MAX_ANSWER_BYTES = 64 * 1024


class Refused(Exception):
    """The URL is not one the platform will call; the message says why."""


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
        raise Refused(f"the host {parts.hostname!r} does not resolve") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
    if not allow_private:
        for address in addresses:
            if not _public(address):
                raise Refused(f"{parts.hostname} resolves to {address}, a non-public address")
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    return Target(parts.scheme, parts.hostname, port, path, str(addresses[0]))


def refusal(url: str) -> str | None:
    """Why the platform will not call ``url``, or None (checked again when it calls)."""
    try:
        resolve(url)
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
