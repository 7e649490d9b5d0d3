"""Which addresses the platform calls on a tenant's behalf: public ones only (unless allowed).

A host is resolved once and judged by every address it resolves to; the caller then connects to
the address that was checked, so a name that resolves elsewhere a moment later (DNS rebinding)
changes nothing. An IPv6 address that carries an IPv4 address is judged as what it carries.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError


class Refused(Exception):
    """The URL is not one the platform will call; the message says why."""


class Unresolved(Refused):
    """The URL's host does not resolve (now): nothing to call, and nothing refused for good."""


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
    address = checked(parts.hostname, infos, allow_private=allow_private)
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    return Target(parts.scheme, parts.hostname, port, path, address)


def checked(host: str, infos: Sequence[tuple[Any, ...]], *, allow_private: bool) -> str:
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


def refusal(url: str, *, allow_private: bool | None = None) -> str | None:
    """Why the platform will not call ``url`` (``resolve``'s ``allow_private``), or None: it is
    checked again when it is called. A host that does not resolve yet is not a reason: the call
    resolves it again, and refuses it (or fails) then."""
    try:
        resolve(url, allow_private=allow_private)
    except Unresolved:
        return None
    except Refused as exc:
        return str(exc)
    return None


def validate_webhook_url(url: str) -> None:
    """A form's validator: ``ValidationError`` for a URL the platform will not call (``refusal``)."""
    why = refusal(url) if url else None
    if why is not None:
        raise ValidationError(f"Not a webhook the platform will call: {why}.")
