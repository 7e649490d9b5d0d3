"""A blocking POST to a checked address (webhooks): no redirects followed, the answer capped.

The ``Host`` header, TLS's server name and the certificate's name stay the URL's host.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from dataclasses import dataclass

from agents_app.outbound.addresses import Target, resolve

#: What is read of an answer's body at most.
MAX_ANSWER_BYTES = 64 * 1024


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


class _PinnedHTTP(http.client.HTTPConnection):
    """HTTP to the checked address, with the URL's host in the ``Host`` header."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(_PinnedHTTP, http.client.HTTPSConnection):
    """HTTPS to the checked address, with the URL's host as the server name and the certificate's name."""

    def connect(self) -> None:
        super().connect()
        self.sock = ssl.create_default_context().wrap_socket(self.sock, server_hostname=self.host)


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
