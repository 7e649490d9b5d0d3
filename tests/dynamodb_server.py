"""moto's DynamoDB over HTTP, made to keep two promises of DynamoDB's that moto's own server does not.

- **Each request is atomic.** DynamoDB applies a conditional write or a transaction as one step;
  moto's models take no lock and its server (``moto_server``) answers on a thread per request, so
  two conditional puts can both pass their condition, and a failed transaction restores a copy of
  the table over what another request wrote meanwhile. Here moto's application answers one request
  at a time (connections are still served on threads, kept alive).
- **Nothing grows but the data.** moto keeps every model instance it ever made (for its dashboard):
  a transaction copies each table it names, so a table's worth of items is kept per action, for the
  server's life. Here nothing is kept.

Run as ``python -m tests.dynamodb_server HOST PORT``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.dynamodb.models.dynamo_type import Item
from moto.dynamodb.models.table import Table
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


class _Untracked(list):
    """An instance list that keeps nothing."""

    def append(self, instance: object) -> None:
        pass


def one_at_a_time(app: Callable[..., Iterable[bytes]]) -> Callable[..., list[bytes]]:
    """The WSGI application ``app``, answering one request at a time (its whole body under the lock)."""
    lock = threading.Lock()

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with lock:
            return list(app(environ, start_response))

    return application


def main(host: str, port: int) -> None:
    Table.instances_tracked = _Untracked()  # type: ignore[attr-defined]
    Item.instances_tracked = _Untracked()  # type: ignore[attr-defined]
    app = one_at_a_time(DomainDispatcherApplication(create_backend_app))
    run_simple(host, port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
