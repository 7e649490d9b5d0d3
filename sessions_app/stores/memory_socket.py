"""One in-memory store shared by the processes of one machine, over a Unix socket.

``serve`` keeps an ``InMemoryStore`` behind a ``MemoryStoreServer`` and points its children at it
with ``AK_SESSION__IN_MEMORY__SOCKET``; ``build_store`` then gives them a ``SocketMemoryStore``.
The protocol is one JSON object a line each way: a request names a method of the served store
(``_OPERATIONS``) and its arguments; the answer is ``{"ok": result}`` or ``{"error": name,
"message": text}``, raised again on the client's side. The socket is its owner's only (``0600``).
A request line over ``MAX_LINE_BYTES`` is answered ``PayloadTooLarge`` and its connection closed.
"""

from __future__ import annotations

import os
import socket
import socketserver
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from sessions_app.stores.base import (
    DELETE,
    SHARED_SCOPE,
    CommitResult,
    LockLost,
    Message,
    PayloadTooLarge,
    RunRevoked,
    SessionBusy,
    SessionKey,
    SessionStore,
    Snapshot,
    StoreError,
    StoreUnavailable,
    VersionConflict,
    dumps,
    loads,
)
from sessions_app.stores.events import Event, EventLog, check_run_id, encode_events
from sessions_app.stores.memory import HeldSnapshot, InMemoryStore, TokenLock
from sessions_app.stores.sealing import PLAIN, Sealer

#: The longest request line the server reads, its newline included.
MAX_LINE_BYTES = 32 * 1024 * 1024

#: Errors that cross the socket by name; anything else arrives as ``StoreError``.
_ERRORS: dict[str, type[Exception]] = {
    cls.__name__: cls
    for cls in (StoreUnavailable, VersionConflict, SessionBusy, LockLost, PayloadTooLarge, RunRevoked, StoreError)
} | {"TypeError": TypeError, "ValueError": ValueError}


#: How the server decodes a request's arguments, by name. Payloads stay as the client sent them.
_DECODE: dict[str, Callable[[Any], Any]] = {
    "key": lambda key: SessionKey(*key),
    "append": lambda messages: [(counted_as, held) for counted_as, held in messages],
    "state": lambda state: {
        scope: {k: DELETE if v is None else v for k, v in values.items()} for scope, values in state.items()
    },
    "rows": lambda rows: [(kind, data) for kind, data in rows],
}
_OPERATIONS = frozenset(
    {"load_held", "history_held", "commit_held", "committed", "revoke", "delete", "ping"}
    | {"append_held_events", "read_held_events", "delete_logs", "take_lock", "renew_lock", "release_lock"}
)


class MemoryStoreServer:
    """Serves ``store`` on a Unix socket only its owner may use (``0600``), one thread per
    connection, until ``stop``; request lines longer than ``max_line`` bytes close their connection."""

    def __init__(self, store: InMemoryStore, path: str | Path | None = None, *, max_line: int = MAX_LINE_BYTES) -> None:
        self.store = store
        self._folder = None if path else tempfile.mkdtemp(prefix="ak-store-")  # mode 0700
        self.path = str(path or Path(self._folder) / "store.sock")

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                while line := self.rfile.readline(max_line + 1):
                    if len(line) > max_line:  # no newline within the limit: the rest is not read
                        message = f"a request line is at most {max_line} bytes; connection closed"
                        self.wfile.write(orjson.dumps({"error": "PayloadTooLarge", "message": message}) + b"\n")
                        return
                    self.wfile.write(orjson.dumps(_answer(store, line)) + b"\n")
                    self.wfile.flush()

        self._server = socketserver.ThreadingUnixStreamServer(self.path, Handler, bind_and_activate=False)
        try:
            umask = os.umask(0o077)
            try:
                self._server.server_bind()
            finally:
                os.umask(umask)
            os.chmod(self.path, 0o600)
            self._server.server_activate()
        except OSError:
            self._server.server_close()
            raise
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    def start(self) -> MemoryStoreServer:
        # ``stop`` waits for the loop's next poll: a tenth of a second, not socketserver's default half.
        serve = {"poll_interval": 0.1}
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs=serve, name="memory-store", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        Path(self.path).unlink(missing_ok=True)
        if self._folder:
            os.rmdir(self._folder)


def _answer(store: InMemoryStore, line: bytes) -> dict[str, Any]:
    """Call the method a request names; its result (dataclasses as objects) or its error."""
    try:
        request = orjson.loads(line)
        operation = request.pop("op")
        if operation not in _OPERATIONS:
            raise ValueError(f"unknown operation: {operation!r}")
        arguments = {name: _DECODE.get(name, lambda v: v)(value) for name, value in request.items()}
        return {"ok": getattr(store, operation)(**arguments)}
    except (StoreError, TypeError, ValueError, KeyError) as exc:
        name = type(exc).__name__ if type(exc).__name__ in _ERRORS else "StoreError"
        return {"error": name, "message": str(exc)}


class _Connection:
    """One thread's connection to the server, closed with its thread-local."""

    def __init__(self, path: str, timeout: float) -> None:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.settimeout(timeout)
            conn.connect(path)
        except OSError:
            conn.close()
            raise
        self.pid, self.socket, self.reader = os.getpid(), conn, conn.makefile("rb")

    def close(self) -> None:
        if getattr(self, "pid", None) == os.getpid():  # not a forked copy: that is the parent's
            self.reader.close()
            self.socket.close()

    __del__ = close


class SocketMemoryStore(SessionStore, EventLog):
    """The ``in_memory`` backend of a process whose store another process keeps: one connection
    per thread, made again after a fork or a failure. It seals what it sends (``sealer``, the text
    form) and opens what it gets: the server keeps payloads as sent, and needs no key."""

    name = "in_memory"
    lock_class = TokenLock

    def __init__(self, *, socket: str, ttl: float = 0, timeout: float = 30.0, sealer: Sealer = PLAIN) -> None:
        SessionStore.__init__(self, ttl=ttl)
        EventLog.__init__(self)
        self.sealer = sealer
        self.socket = socket
        self.timeout = timeout
        self._local = threading.local()

    def _connection(self) -> tuple[socket.socket, Any]:
        held = getattr(self._local, "held", None)
        if held is None or held.pid != os.getpid():
            held = self._local.held = _Connection(self.socket, self.timeout)
        return held.socket, held.reader

    def _call(self, op: str, **arguments: Any) -> Any:
        if "key" in arguments:
            arguments["key"] = [arguments["key"].tenant, arguments["key"].session_id]
        request = orjson.dumps({"op": op, **arguments}) + b"\n"
        if len(request) > MAX_LINE_BYTES:
            raise PayloadTooLarge(f"a request to the in-memory store is at most {MAX_LINE_BYTES} bytes")
        try:
            conn, reader = self._connection()
            conn.sendall(request)
            line = reader.readline()
            if not line:
                raise ConnectionError("the server closed the connection")
        except OSError as exc:
            self.close()
            raise StoreUnavailable(f"the in-memory store at {self.socket} does not answer: {exc}") from exc
        answer = orjson.loads(line)
        if "error" in answer:
            raise _ERRORS.get(answer["error"], StoreError)(answer["message"])
        return answer["ok"]

    def load(self, key: SessionKey, *, scopes: Sequence[str] = (SHARED_SCOPE,), window: int = 50) -> Snapshot:
        got = self._call("load_held", key=key, scopes=list(scopes), window=window)
        return HeldSnapshot(**got).opened(self.sealer, key)

    def history(self, key: SessionKey, *, start: int = 0, limit: int = 100) -> list[Message]:
        open_ = self.sealer.opener(key)
        return [Message.from_json(open_(m)) for m in self._call("history_held", key=key, start=start, limit=limit)]

    def commit(
        self,
        key: SessionKey,
        *,
        expected_version: int | None,
        append: Sequence[Message] = (),
        state: Mapping[str, Mapping[str, Any]] | None = None,
        run_id: str | None = None,
    ) -> CommitResult:
        # None stands for DELETE. Sealed as text: the socket carries JSON.
        seal = self.sealer.seal_text
        changes = {
            scope: {k: None if v is DELETE else seal(key, dumps(v)) for k, v in values.items()}
            for scope, values in (state or {}).items()
        }
        messages = [(m.counted_as, seal(key, m.to_json())) for m in append]
        arguments = {"expected_version": expected_version, "append": messages, "state": changes, "run_id": run_id}
        return CommitResult(**self._call("commit_held", key=key, **arguments))

    def committed(self, key: SessionKey, run_id: str) -> int | None:
        return self._call("committed", key=key, run_id=run_id)

    def revoke(self, key: SessionKey, run_id: str) -> bool:
        return self._call("revoke", key=key, run_id=run_id)

    def delete(self, key: SessionKey) -> bool:
        return self._call("delete", key=key)

    def append_events(self, key: SessionKey, run_id: str, events: Sequence[tuple[str, dict[str, Any]]]) -> int:
        rows = [(kind, self.sealer.seal_text(key, data)) for kind, data in encode_events(events)]
        return self._call("append_held_events", key=key, run_id=check_run_id(run_id), rows=rows)

    def read_events(self, key: SessionKey, run_id: str, *, after: int = 0, limit: int = 1000) -> list[Event]:
        rows = self._call("read_held_events", key=key, run_id=check_run_id(run_id), after=after, limit=limit)
        open_ = self.sealer.opener(key)
        return [Event(n, kind, loads(open_(data))) for n, kind, data in rows]

    def delete_logs(self, key: SessionKey) -> None:
        self._call("delete_logs", key=key)

    def take_lock(self, key: SessionKey, token: str, lease: float) -> bool:
        return self._call("take_lock", key=key, token=token, lease=lease)

    def renew_lock(self, key: SessionKey, token: str, lease: float) -> None:
        self._call("renew_lock", key=key, token=token, lease=lease)

    def release_lock(self, key: SessionKey, token: str) -> None:
        self._call("release_lock", key=key, token=token)

    def ping(self) -> None:
        self._call("ping")

    def close(self) -> None:
        held = getattr(self._local, "held", None)
        self._local.held = None
        if held is not None:
            held.close()
