"""Where the platform may send requests on a tenant's behalf (webhooks): public addresses only."""

from __future__ import annotations

import ipaddress
import socket
import urllib.parse

from django.conf import settings


def webhook_refusal(url: str) -> str | None:
    """Why the platform will not POST to ``url``, or None. Unless ``AK_RUN__WEBHOOK_ALLOW_PRIVATE``,
    a host that resolves to a loopback, private, link-local or reserved address is refused, so
    a tenant cannot aim the platform at its own network. Checked when the run is queued and again
    before each delivery (the name may resolve elsewhere by then)."""
    if settings.AK_RUN["WEBHOOK_ALLOW_PRIVATE"]:
        return None
    parts = urllib.parse.urlsplit(url)
    try:
        infos = socket.getaddrinfo(parts.hostname or "", parts.port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return f"the host {parts.hostname!r} does not resolve"
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global or address.is_multicast:
            return f"{parts.hostname} resolves to {address}, a non-public address"
    return None
