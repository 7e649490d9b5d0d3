"""The in-memory store's Unix socket: its owner's only, and a bound on what it reads per line."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import orjson
import pytest

from sessions_app.stores.base import Message, PayloadTooLarge, SessionKey
from sessions_app.stores.memory import InMemoryStore
from sessions_app.stores.memory_socket import MAX_LINE_BYTES, MemoryStoreServer, SocketMemoryStore


def _mode(path: str | Path) -> int:
    return stat.S_IMODE(Path(path).stat().st_mode)


def test_the_socket_and_its_folder_are_owner_only() -> None:
    server = MemoryStoreServer(InMemoryStore()).start()
    try:
        assert stat.S_ISSOCK(Path(server.path).stat().st_mode)
        assert _mode(server.path) == 0o600
        assert _mode(Path(server.path).parent) == 0o700
    finally:
        server.stop()


def test_a_socket_at_a_given_path_is_owner_only_too(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    server = MemoryStoreServer(InMemoryStore(), tmp_path / "store.sock").start()
    try:
        assert _mode(server.path) == 0o600
    finally:
        server.stop()


def _ask(conn: socket.socket, reader, request: bytes) -> dict:
    conn.sendall(request)
    return orjson.loads(reader.readline())


def test_an_over_long_line_closes_its_connection_and_the_server_goes_on() -> None:
    server = MemoryStoreServer(InMemoryStore(), max_line=1000).start()
    try:
        other = socket.socket(socket.AF_UNIX)
        other.connect(server.path)
        other_reader = other.makefile("rb")
        assert _ask(other, other_reader, b'{"op": "ping"}\n') == {"ok": None}

        greedy = socket.socket(socket.AF_UNIX)
        greedy.connect(server.path)
        reader = greedy.makefile("rb")
        greedy.sendall(b'{"op": "ping", "x": "' + b"a" * 5000)  # no newline, and more than allowed
        answer = orjson.loads(reader.readline())
        assert answer["error"] == "PayloadTooLarge" and "1000 bytes" in answer["message"]
        assert reader.readline() == b""  # closed by the server

        assert _ask(other, other_reader, b'{"op": "ping"}\n') == {"ok": None}  # another connection goes on
        client = SocketMemoryStore(socket=server.path)  # and new ones are served
        client.ping()
        client.close()
        other.close()
        greedy.close()
    finally:
        server.stop()


def test_a_line_within_the_bound_is_served() -> None:
    server = MemoryStoreServer(InMemoryStore(), max_line=1000).start()
    try:
        conn = socket.socket(socket.AF_UNIX)
        conn.connect(server.path)
        line = b'{"op": "ping"' + b" " * (1000 - 15) + b"}\n"
        assert len(line) == 1000
        assert _ask(conn, conn.makefile("rb"), line) == {"ok": None}
        conn.close()
    finally:
        server.stop()


def test_the_client_refuses_a_request_over_the_bound() -> None:
    server = MemoryStoreServer(InMemoryStore()).start()
    client = SocketMemoryStore(socket=server.path)
    try:
        with pytest.raises(PayloadTooLarge):
            client.commit(SessionKey("t", "s"), expected_version=None, append=[Message("user", "x" * MAX_LINE_BYTES)])
        client.ping()  # the connection is still good: nothing was sent
        assert client.load(SessionKey("t", "s")).total == 0  # nothing was written
    finally:
        client.close()
        server.stop()
