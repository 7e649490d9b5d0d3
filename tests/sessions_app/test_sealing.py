"""Encryption at rest (``sessions_app/stores/sealing.py``) on every backend over its real service:
nothing readable is left in Redis, in DynamoDB's items or in the in-memory store; plain sessions
stay readable once the key is set; keys are per tenant; rotation; a missing key is an error."""

from __future__ import annotations

import socket
import threading
import uuid
from contextlib import suppress

import pytest

from sessions_app.stores.base import SHARED_SCOPE, TOOL_CALL, Message, SessionKey, SessionStore, StoreError
from sessions_app.stores.memory import InMemoryStore
from sessions_app.stores.memory_socket import MemoryStoreServer, SocketMemoryStore
from sessions_app.stores.redis.client import prefix
from sessions_app.stores.sealing import MARKER, PLAIN, PayloadUnreadable, Sealer, is_sealed
from tests.test_settings import start

KEY_A = "a" * 16 + "-first-key-of-the-tests-0123456789"
KEY_B = "b" * 16 + "-second-key-of-the-tests-987654321"
BACKENDS = ["in_memory", "redis", "dynamodb"]
MARKERS = (MARKER.encode(), b"~2")  # the text form (DynamoDB), the bytes form (Redis, in memory)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


def words() -> tuple[str, str, str, str]:
    """Four texts found nowhere else: a message, a tool call's data, a state value, an event's."""
    tag = uuid.uuid4().hex[:10]
    return f"pineapple{tag}", f"toolarg{tag}", f"statevalue{tag}", f"eventtext{tag}"


def write_turn(store: SessionStore, key: SessionKey, version: int, texts: tuple[str, str, str, str]) -> int:
    message, argument, value, event = texts
    call = Message("assistant", "lookup(...)", "a", kind=TOOL_CALL, data={"arguments": {"q": argument}})
    turn = [Message("user", message, "a"), call, Message("assistant", f"re: {message}", "a")]
    state = {SHARED_SCOPE: {"note": value}, "a": {"memory": [value, {"deep": value}]}}
    store.append_events(key, "run-1", [("delta", {"text": event}), ("done", {"result": message})])
    return store.commit(key, expected_version=version, append=turn, state=state, run_id=f"run-{version}").version


def read_back(store: SessionStore, key: SessionKey) -> tuple[list[str], dict, list[dict]]:
    snap = store.load(key, scopes=(SHARED_SCOPE, "a"), window=50)
    assert [m.content for m in store.history(key)] == [m.content for m in snap.messages]
    return [m.content for m in snap.messages], snap.state, [e.data for e in store.read_events(key, "run-1")]


def held(store: SessionStore, key: SessionKey) -> list[bytes]:
    """Every payload the backend's service holds for the session, read by the service's own means:
    Redis ``SCAN`` then ``GET``/``LRANGE``/``HGETALL``/``SMEMBERS``/``XRANGE`` of every key; a
    DynamoDB ``Scan`` of the table; the in-memory store's data structures."""
    if store.name == "redis":
        client, found = store.client, []  # type: ignore[attr-defined]
        for name in client.scan_iter(match=prefix(key) + "*"):
            kind = client.type(name).decode()
            if kind == "string":
                found.append(client.get(name))
            elif kind == "list":
                found.extend(client.lrange(name, 0, -1))
            elif kind == "hash":
                found.extend(b"%s=%s" % pair for pair in client.hgetall(name).items())
            elif kind == "set":
                found.extend(client.smembers(name))
            elif kind == "stream":
                found.extend(repr(fields).encode() for _, fields in client.xrange(name))
            else:
                raise AssertionError(f"a key of an unexpected type: {name!r} ({kind})")
        assert found, "the session left nothing in Redis"
        return found
    if store.name == "dynamodb":
        pages = store.client.get_paginator("scan").paginate(TableName=store.table_name)  # type: ignore[attr-defined]
        items = [item for page in pages for item in page["Items"] if item["pk"]["S"].startswith(f"{key.tenant}#")]
        assert items, "the session left nothing in DynamoDB"
        return [repr(item).encode() for item in items]
    return [repr(vars(store)).encode()]


def test_no_message_text_state_value_or_event_is_held_in_clear(make_store, backend, key) -> None:
    store = make_store(backend, sealer=Sealer([KEY_A]))
    texts = words()
    write_turn(store, key, 0, texts)

    payloads = held(store, key)

    for text in texts:
        assert not any(text.encode() in payload for payload in payloads), f"{text} is held in clear"
    assert any(marker in payload for payload in payloads for marker in MARKERS)
    contents, state, events = read_back(store, key)
    assert contents == [texts[0], "lookup(...)", f"re: {texts[0]}"]
    assert state == {SHARED_SCOPE: {"note": texts[2]}, "a": {"memory": [texts[2], {"deep": texts[2]}]}}
    assert events == [{"text": texts[3]}, {"result": texts[0]}]
    assert store.load(key, window=3).messages[1].data == {"arguments": {"q": texts[1]}}


def test_without_a_key_payloads_are_plain_json_as_before(make_store, backend, key) -> None:
    store = make_store(backend)
    texts = words()
    write_turn(store, key, 0, texts)
    payloads = b"".join(held(store, key))
    assert texts[0].encode() in payloads and not any(marker in payloads for marker in MARKERS)


def test_plain_sessions_stay_readable_and_go_on_once_the_key_is_set(make_store, backend, key) -> None:
    plain = make_store(backend)
    # In memory, one process's memory: the same store, its sealer switched on.
    sealed = plain if backend == "in_memory" else make_store(backend, sealer=Sealer([KEY_A]))
    before, after = words(), words()
    write_turn(plain, key, 0, before)
    sealed.sealer = Sealer([KEY_A])  # type: ignore[attr-defined]

    contents, state, _ = read_back(sealed, key)
    assert contents == [before[0], "lookup(...)", f"re: {before[0]}"] and state[SHARED_SCOPE] == {"note": before[2]}
    write_turn(sealed, key, 1, after)  # a new turn on the plain session

    contents, state, events = read_back(sealed, key)
    assert contents[::3] == [before[0], after[0]] and len(contents) == 6
    assert state[SHARED_SCOPE] == {"note": after[2]}
    assert events[-2:] == [{"text": after[3]}, {"result": after[0]}]
    payloads = held(sealed, key)
    assert any(before[0].encode() in p for p in payloads)  # the old turn is as it was written
    assert not any(after[0].encode() in p or after[2].encode() in p for p in payloads)  # the new one sealed


def test_a_tenants_payload_does_not_open_with_another_tenants_key(make_store, key) -> None:
    sealer = Sealer([KEY_A])
    other = SessionKey(tenant=f"{key.tenant}x", session_id=key.session_id)
    sealed = sealer.seal(key, '{"content":"mine"}')
    assert sealer.open(key, sealed) == b'{"content":"mine"}'
    with pytest.raises(PayloadUnreadable):
        sealer.open(other, sealed)
    # In the store: tenant A's stored message copied into tenant B's session does not open there.
    store = make_store("redis", sealer=sealer)
    store.commit(key, expected_version=0, append=[Message("user", "mine", "a")])
    store.commit(other, expected_version=0, append=[Message("user", "theirs", "a")])
    store.client.rpush(prefix(other) + "msgs", store.client.lindex(prefix(key) + "msgs", 0))
    store.client.hset(prefix(other) + "meta", "n", 2)
    with pytest.raises(PayloadUnreadable):
        store.load(other)


def test_the_per_tenant_keys_differ_and_the_nonce_is_fresh_each_time(key) -> None:
    sealer = Sealer([KEY_A])
    other = SessionKey(tenant=f"{key.tenant}x", session_id=key.session_id)
    one, two = sealer.seal(key, "{}"), sealer.seal(key, "{}")
    assert one != two and is_sealed(one) and not is_sealed("{}")
    # With the session bound in, only the key differs: the same tenant's key for another session
    # is the same key, and still does not open it (the session is associated data).
    with pytest.raises(PayloadUnreadable):
        sealer.open(SessionKey(tenant=key.tenant, session_id="another"), one)
    with pytest.raises(PayloadUnreadable):
        sealer.open(other, one)


def test_rotation_reads_old_payloads_and_writes_under_the_new_key(make_store, backend, key) -> None:
    old = make_store(backend, sealer=Sealer([KEY_A]))
    first, second = words(), words()
    write_turn(old, key, 0, first)
    rotated = old if backend == "in_memory" else make_store(backend, sealer=Sealer([KEY_A]))
    rotated.sealer = Sealer([KEY_B, KEY_A])  # type: ignore[attr-defined]

    assert read_back(rotated, key)[0][0] == first[0]  # old key, second in the list: still opens
    write_turn(rotated, key, 1, second)
    assert read_back(rotated, key)[0][3] == second[0]

    rotated.sealer = Sealer([KEY_B])  # type: ignore[attr-defined]  # the old key dropped too early
    with pytest.raises(PayloadUnreadable, match="does not list"):
        rotated.load(key, scopes=(SHARED_SCOPE, "a"))
    rotated.sealer = Sealer([KEY_A])  # type: ignore[attr-defined]  # the new key forgotten
    with pytest.raises(PayloadUnreadable):
        rotated.history(key, start=3, limit=3)


def test_a_sealed_store_read_without_its_key_is_a_clear_store_error(make_store, backend, key) -> None:
    store = make_store(backend, sealer=Sealer([KEY_A]))
    write_turn(store, key, 0, words())
    store.sealer = PLAIN  # type: ignore[attr-defined]
    for read in (lambda: store.load(key), lambda: store.history(key), lambda: store.read_events(key, "run-1")):
        with pytest.raises(StoreError, match="AK_SESSION__ENCRYPTION_KEY would hold: it is not set"):
            read()


def test_reseal_moves_a_payload_to_the_first_key(key) -> None:
    old, new = Sealer([KEY_A]), Sealer([KEY_B, KEY_A])
    stored = old.seal(key, '{"v":1}')
    moved = new.reseal(key, stored)
    assert moved is not None and new.reseal(key, moved) is None
    assert Sealer([KEY_B]).open(key, moved) == b'{"v":1}'
    assert new.reseal(key, '{"v":1}') is not None  # plain: sealed
    assert PLAIN.reseal(key, '{"v":1}') is None


def test_keys_are_checked() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        Sealer(["short"])
    with pytest.raises(ValueError, match="share an id"):
        Sealer([KEY_A, KEY_A])


def test_the_configured_key_seals_what_build_store_makes(settings, make_store, key: SessionKey) -> None:
    settings.AK_SESSION = {**settings.AK_SESSION, "ENCRYPTION_KEYS": [KEY_B, KEY_A]}
    store: SessionStore = make_store("redis")
    store.commit(key, expected_version=0, append=[Message("user", "configured", "a")])
    stored = store.client.lindex(prefix(key) + "msgs", 0)  # type: ignore[attr-defined]
    assert is_sealed(stored) and Sealer([KEY_B]).open(key, stored).startswith(b'{"role":"user","content":"configured"')


def test_reseal_moves_a_session_to_the_first_key_while_it_goes_on(make_store, backend, key) -> None:
    old = make_store(backend, sealer=Sealer([KEY_A]))
    plain_key = SessionKey(tenant=key.tenant, session_id=key.session_id + "-plain")
    first, second = words(), words()
    old.sealer = PLAIN  # type: ignore[attr-defined]
    write_turn(old, plain_key, 0, first)  # from before the key was set
    old.sealer = Sealer([KEY_A])  # type: ignore[attr-defined]
    write_turn(old, key, 0, second)
    rotated = old if backend == "in_memory" else make_store(backend)
    rotated.sealer = Sealer([KEY_B, KEY_A])  # type: ignore[attr-defined]

    # 3 messages and 2 state values each.
    assert (rotated.reseal(key), rotated.reseal(plain_key)) == (5, 5)
    assert (rotated.reseal(key), rotated.reseal(plain_key)) == (0, 0)

    rotated.sealer = Sealer([KEY_B])  # type: ignore[attr-defined]  # the old key dropped (event logs expire)
    for session, texts in ((key, second), (plain_key, first)):
        snap = rotated.load(session, scopes=(SHARED_SCOPE, "a"))
        assert [m.content for m in snap.messages] == [m.content for m in rotated.history(session)]
        assert snap.messages[0].content == texts[0] and snap.state[SHARED_SCOPE] == {"note": texts[2]}
    # The tool call's argument and the state value, which no event log quotes, are held in clear no more.
    assert not any(first[1].encode() in p or first[2].encode() in p for p in held(rotated, plain_key))


class Relay:
    """A Unix socket between a client and the in-memory store's server that keeps a copy of
    every byte either way: the traffic as a capture on the wire would show it."""

    def __init__(self, target: str, path: str) -> None:
        self.target, self.path, self.seen = target, path, bytearray()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.connect(self.target)
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with suppress(OSError):
            while chunk := source.recv(65536):
                self.seen.extend(chunk)
                sink.sendall(chunk)
        with suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.listener.close()


@pytest.mark.parametrize("sealer", [Sealer([KEY_A]), PLAIN], ids=["sealed", "plain"])
def test_the_in_memory_stores_socket_carries_no_payload_in_clear(sealer, key, tmp_path) -> None:
    served = InMemoryStore(ttl=3600)  # the server has no key: the client seals
    server = MemoryStoreServer(served).start()
    relay = Relay(server.path, str(tmp_path / "relay.sock"))
    store = SocketMemoryStore(socket=relay.path, ttl=3600, sealer=sealer)
    try:
        texts = words()
        write_turn(store, key, 0, texts)
        contents, state, events = read_back(store, key)
    finally:
        store.close()
        relay.close()
        server.stop()

    assert contents[0] == texts[0] and state[SHARED_SCOPE] == {"note": texts[2]} and events[0] == {"text": texts[3]}
    in_clear = [text for text in texts if text.encode() in relay.seen or text.encode() in repr(vars(served)).encode()]
    assert in_clear == ([] if sealer.enabled else list(texts))


@pytest.mark.parametrize("value", ["c" * 40 + ",short-key", f"{KEY_A},{KEY_A}"], ids=["short", "twice"])
def test_a_short_or_repeated_encryption_key_stops_start_up(value: str) -> None:
    result = start({"DJANGO_DEBUG": "1", "AK_SESSION__ENCRYPTION_KEY": value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "AK_SESSION__ENCRYPTION_KEY" in result.stderr
    assert "short-key" not in result.stderr and KEY_A not in result.stderr
