"""One contract, three backends (the in-memory one also over its socket), real services (see ``store`` in conftest)."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from sessions_app.stores.base import (
    DELETE,
    SHARED_SCOPE,
    TOOL_CALL,
    TOOL_RESULT,
    LockLost,
    Message,
    RunRevoked,
    SessionBusy,
    SessionKey,
    SessionStore,
    VersionConflict,
)


def msgs(*contents: str, role: str = "user") -> list[Message]:
    return [Message(role=role, content=c, agent="a") for c in contents]


def test_a_missing_session_loads_empty(store: SessionStore, key: SessionKey) -> None:
    snap = store.load(key, scopes=(SHARED_SCOPE, "a"))
    assert (snap.version, snap.total, snap.messages, snap.offset) == (0, 0, [], 0)
    assert snap.state == {SHARED_SCOPE: {}, "a": {}}
    assert not snap.exists
    assert store.history(key) == []


def test_commit_appends_and_raises_the_version(store: SessionStore, key: SessionKey) -> None:
    first = store.commit(key, expected_version=0, append=msgs("hi") + msgs("hello", role="assistant"))
    assert (first.version, first.total, first.role_counts) == (1, 2, {"user": 1, "assistant": 1})
    store.commit(key, expected_version=1, append=msgs("ünïcødé ✓"))
    snap = store.load(key)
    assert snap.version == 2
    assert [m.content for m in snap.messages] == ["hi", "hello", "ünïcødé ✓"]
    assert [m.role for m in snap.messages] == ["user", "assistant", "user"]
    assert snap.role_counts == {"user": 2, "assistant": 1}
    assert snap.messages[0].agent == "a" and snap.messages[0].created_at > 0


def test_items_keep_their_kind_and_data_and_count_by_kind(store: SessionStore, key: SessionKey) -> None:
    call = Message("assistant", 'get_weather({"city": "Paris"})', "a", kind=TOOL_CALL, data={"name": "get_weather"})
    result = Message("tool", "18 °C", "a", kind=TOOL_RESULT, data={"call_id": "c1", "output": {"temp": 18.5}})
    first = store.commit(key, expected_version=0, append=[*msgs("hi"), call, result, *msgs("warm", role="assistant")])
    assert first.role_counts == {"user": 1, "assistant": 1, TOOL_CALL: 1, TOOL_RESULT: 1}
    for entries in (store.load(key, window=10).messages, store.history(key)):
        assert [(m.kind, m.role) for m in entries] == [
            ("message", "user"),
            (TOOL_CALL, "assistant"),
            (TOOL_RESULT, "tool"),
            ("message", "assistant"),
        ]
        assert entries[1].data == {"name": "get_weather"} and entries[2].data["output"] == {"temp": 18.5}
        assert entries[0].data is None and entries[2].content == "18 °C"


def test_a_commit_records_the_run_that_made_it(store: SessionStore, key: SessionKey) -> None:
    assert store.committed(key, "run-1") is None
    store.commit(key, expected_version=0, append=msgs("q1") + msgs("a1", role="assistant"), run_id="run-1")
    store.commit(key, expected_version=1, append=msgs("q2") + msgs("a2", role="assistant"), run_id="run-2")
    assert (store.committed(key, "run-1"), store.committed(key, "run-2"), store.committed(key, "run-3")) == (0, 2, None)
    assert [m.content for m in store.history(key, start=store.committed(key, "run-2"), limit=2)] == ["q2", "a2"]
    snap = store.load(key, window=10)
    assert snap.total == 4 and len(snap.messages) == 4  # run records never show up as messages or state
    assert snap.state == {SHARED_SCOPE: {}}
    store.delete(key)
    assert store.committed(key, "run-1") is None


def test_load_reads_only_the_window(store: SessionStore, key: SessionKey) -> None:
    for i in range(3):
        store.commit(key, expected_version=i, append=msgs(*[f"m{i * 10 + j}" for j in range(10)]))
    snap = store.load(key, window=7)
    assert (snap.total, snap.offset) == (30, 23)
    assert [m.content for m in snap.messages] == [f"m{i}" for i in range(23, 30)]
    empty_window = store.load(key, window=0)
    assert (empty_window.messages, empty_window.offset, empty_window.total) == ([], 30, 30)
    assert store.load(key, window=100).offset == 0


def test_history_pages_oldest_first(store: SessionStore, key: SessionKey) -> None:
    store.commit(key, expected_version=0, append=msgs(*[f"m{i}" for i in range(25)]))
    pages, start = [], 0
    while page := store.history(key, start=start, limit=10):
        pages.append([m.content for m in page])
        start += 10
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [c for page in pages for c in page] == [f"m{i}" for i in range(25)]
    assert store.history(key, start=25, limit=10) == []


def test_state_is_written_key_by_key_per_scope(store: SessionStore, key: SessionKey) -> None:
    store.commit(key, expected_version=0, state={SHARED_SCOPE: {"profile": {"name": "Ann"}}, "a": {"n": 1, "x": [1]}})
    store.commit(key, expected_version=1, state={"a": {"n": 2, "x": DELETE}, "b": {"k": None}})
    snap = store.load(key, scopes=(SHARED_SCOPE, "a", "b"))
    assert snap.state == {SHARED_SCOPE: {"profile": {"name": "Ann"}}, "a": {"n": 2}, "b": {"k": None}}
    assert store.load(key, scopes=("a",)).state == {"a": {"n": 2}}


def test_a_stale_version_writes_nothing(store: SessionStore, key: SessionKey) -> None:
    store.commit(key, expected_version=0, append=msgs("one"))
    with pytest.raises(VersionConflict):
        store.commit(key, expected_version=0, append=msgs("lost?"), state={"a": {"k": 1}})
    with pytest.raises(VersionConflict):
        store.commit(key, expected_version=5, append=msgs("lost?"))
    snap = store.load(key, scopes=("a",))
    assert (snap.version, snap.total, snap.state) == (1, 1, {"a": {}})


def test_an_unconditional_commit_never_loses_appends(store: SessionStore, key: SessionKey) -> None:
    store.commit(key, expected_version=None, state={SHARED_SCOPE: {"k": "v"}})
    store.commit(key, expected_version=None, append=msgs("x"))
    snap = store.load(key)
    assert (snap.version, snap.total, snap.state[SHARED_SCOPE]) == (2, 1, {"k": "v"})


def test_values_must_be_json(store: SessionStore, key: SessionKey) -> None:
    with pytest.raises(TypeError):
        store.commit(key, expected_version=0, state={SHARED_SCOPE: {"k": object()}})
    assert store.load(key).version == 0


def test_delete_removes_everything(store: SessionStore, key: SessionKey) -> None:
    store.commit(key, expected_version=0, append=msgs("a", "b"), state={SHARED_SCOPE: {"k": 1}, "a": {"k": 2}})
    assert store.delete(key) is True
    snap = store.load(key, scopes=(SHARED_SCOPE, "a"))
    assert (snap.version, snap.total, snap.state) == (0, 0, {SHARED_SCOPE: {}, "a": {}})
    assert store.history(key) == []
    assert store.delete(key) is False
    again = store.commit(key, expected_version=0, append=msgs("fresh"))
    assert (again.version, again.total) == (1, 1)


def test_tenants_never_see_each_other(store: SessionStore) -> None:
    one = SessionKey(tenant=f"t{uuid.uuid4().hex[:10]}", session_id="same-id")
    two = SessionKey(tenant=f"t{uuid.uuid4().hex[:10]}", session_id="same-id")
    store.commit(one, expected_version=0, append=msgs("for one"), state={SHARED_SCOPE: {"secret": 1}})
    snap = store.load(two)
    assert (snap.version, snap.total, snap.state) == (0, 0, {SHARED_SCOPE: {}})
    store.commit(two, expected_version=0, append=msgs("for two"))
    store.delete(two)
    assert [m.content for m in store.load(one).messages] == ["for one"]


@pytest.mark.parametrize("kind", ["in_memory", "in_memory_socket", "redis", "dynamodb"])
def test_an_idle_session_expires(make_store, key: SessionKey, kind: str) -> None:
    short = make_store(kind, ttl=1)
    short.commit(key, expected_version=0, append=msgs("soon gone"), state={SHARED_SCOPE: {"k": 1}})
    time.sleep(0.6)
    short.commit(key, expected_version=1, append=msgs("activity pushes expiry"))
    time.sleep(0.6)
    assert short.load(key).total == 2  # 1.2 s after the first write, 0.6 s after the last
    time.sleep(0.7)
    snap = short.load(key)
    assert (snap.version, snap.total, snap.state) == (0, 0, {SHARED_SCOPE: {}})
    assert short.history(key) == []
    assert short.commit(key, expected_version=0, append=msgs("new life")).total == 1


def test_the_lock_is_exclusive(store: SessionStore, key: SessionKey) -> None:
    held = store.acquire(key, lease=10, wait=0)
    with pytest.raises(SessionBusy):
        store.acquire(key, lease=10, wait=0)
    started = time.monotonic()
    with pytest.raises(SessionBusy):
        store.acquire(key, lease=10, wait=0.3)
    assert time.monotonic() - started >= 0.25
    held.release()
    store.acquire(key, lease=10, wait=0).release()


def test_a_waiter_gets_the_lock_when_it_is_released(store: SessionStore, key: SessionKey) -> None:
    held = store.acquire(key, lease=10, wait=0)
    threading.Timer(0.2, held.release).start()
    store.acquire(key, lease=10, wait=5).release()


def test_a_lapsed_lease_fails_loudly(store: SessionStore, key: SessionKey) -> None:
    store.commit(key, expected_version=0, append=msgs("base"))
    slow = store.acquire(key, lease=0.3, wait=0)
    slow_read = store.load(key).version
    time.sleep(0.5)
    fast = store.acquire(key, lease=10, wait=0)  # the lease lapsed: another run may go
    store.commit(key, expected_version=store.load(key).version, append=msgs("fast"))
    with pytest.raises(LockLost):
        slow.renew()
    with pytest.raises(VersionConflict):
        store.commit(key, expected_version=slow_read, append=msgs("slow"))
    slow.release()  # must not release the lock the fast run holds
    with pytest.raises(SessionBusy):
        store.acquire(key, lease=10, wait=0)
    fast.release()
    assert [m.content for m in store.load(key).messages] == ["base", "fast"]


def test_renew_extends_the_lease(store: SessionStore, key: SessionKey) -> None:
    # Renewed every quarter lease, held for a lease and a quarter in all: three quarters of a lease
    # (0.9 s) of margin per renewal, so a busy machine (moto answering slowly) does not let it lapse.
    held = store.acquire(key, lease=1.2, wait=0)
    for _ in range(5):
        time.sleep(0.3)
        held.renew()
    with pytest.raises(SessionBusy):
        store.acquire(key, lease=1, wait=0)
    held.release()


def test_locked_cycles_from_threads_lose_nothing(store: SessionStore, key: SessionKey) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(10):
                with store.lock(key, lease=10, wait=30):
                    snap = store.load(key, window=5)
                    store.commit(key, expected_version=snap.version, append=msgs(f"w{n}-{i}"))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    snap = store.load(key, window=0)
    assert (snap.version, snap.total) == (60, 60)
    contents = [m.content for m in store.history(key, limit=100)]
    assert sorted(contents) == sorted(f"w{n}-{i}" for n in range(6) for i in range(10))


def test_acquire_and_load_holds_the_lock_and_reads_under_it(store: SessionStore, key: SessionKey) -> None:
    store.commit(key, expected_version=0, append=msgs("a", "b", "c"), state={"agent": {"k": 1}})

    lock, snap = store.acquire_and_load(key, lease=10, wait=0, scopes=(SHARED_SCOPE, "agent"), window=2)

    plain = store.load(key, scopes=(SHARED_SCOPE, "agent"), window=2)
    assert (snap.version, snap.total, snap.offset, snap.state) == (plain.version, 3, 1, plain.state)
    assert [m.content for m in snap.messages] == ["b", "c"]
    with pytest.raises(SessionBusy):
        store.acquire(key, lease=10, wait=0)
    lock.release()
    store.acquire(key, lease=10, wait=0).release()


def test_acquire_and_load_waits_for_a_busy_session(store: SessionStore, key: SessionKey) -> None:
    held = store.acquire(key, lease=10, wait=0)
    with pytest.raises(SessionBusy):
        store.acquire_and_load(key, lease=10, wait=0)
    threading.Timer(0.2, lambda: (store.commit(key, expected_version=0, append=msgs("x")), held.release())).start()

    lock, snap = store.acquire_and_load(key, lease=10, wait=5)

    assert (snap.version, [m.content for m in snap.messages]) == (1, ["x"])  # read after the holder's commit
    lock.release()


def test_acquire_and_load_says_whether_a_run_committed(store: SessionStore, key: SessionKey) -> None:
    store.commit(key, expected_version=0, append=msgs("q1", "a1"), run_id="r1")

    for run_id, expected in (("r1", 0), ("r2", None)):
        lock, snap = store.acquire_and_load(key, lease=10, wait=0, run_id=run_id)
        assert (snap.run_committed, snap.total) == (expected, 2)
        lock.release()
    held = store.acquire(key, lease=10, wait=0)  # busy: the slow path looks the run up too
    threading.Timer(0.2, held.release).start()
    lock, snap = store.acquire_and_load(key, lease=10, wait=5, run_id="r1")
    assert snap.run_committed == 0
    lock.release()
    lock, snap = store.acquire_and_load(key, lease=10, wait=0)
    assert snap.run_committed is None  # not asked
    lock.release()


def test_a_revoked_run_never_commits(store: SessionStore, key: SessionKey) -> None:
    assert store.can_revoke
    assert store.revoke(key, "r1") is True  # on a session that does not exist yet
    assert store.load(key).version == 0 and store.committed(key, "r1") is None

    with pytest.raises(RunRevoked):
        store.commit(key, expected_version=0, append=msgs("q", "a"), run_id="r1")
    lock, snap = store.acquire_and_load(key, lease=10, wait=0, run_id="r1")
    with pytest.raises(RunRevoked):
        store.commit_and_release(lock, expected_version=snap.version, append=msgs("q", "a"), run_id="r1")
    lock.release()

    assert (store.load(key).total, snap.run_committed) == (0, None)  # nothing written
    store.commit(key, expected_version=0, append=msgs("q2", "a2"), run_id="r2")  # other runs go on
    assert store.revoke(key, "r1") is True  # again: still revoked
    assert store.revoke(key, "r2") is False  # too late: it committed, and stays committed
    assert store.committed(key, "r2") == 0
    assert [m.content for m in store.history(key)] == ["q2", "a2"]
    store.delete(key)  # the marks go with the session
    assert store.commit(key, expected_version=0, append=msgs("q3"), run_id="r1").total == 1


def test_revoke_and_commit_race_one_winner(store: SessionStore, key: SessionKey) -> None:
    for n in range(20):
        run_id, outcome = f"race-{n}", {}
        version = store.load(key).version

        def commit(run_id: str = run_id, version: int = version, outcome: dict = outcome) -> None:
            try:
                store.commit(key, expected_version=version, append=msgs(run_id), run_id=run_id)
                outcome["committed"] = True
            except RunRevoked:
                outcome["committed"] = False

        worker = threading.Thread(target=commit)
        worker.start()
        revoked = store.revoke(key, run_id)
        worker.join()
        assert revoked is not outcome["committed"]  # exactly one of them won
        assert (store.committed(key, run_id) is not None) is outcome["committed"]


def test_commit_and_release_commits_then_frees_the_lock(store: SessionStore, key: SessionKey) -> None:
    lock, snap = store.acquire_and_load(key, lease=10, wait=0)

    result = store.commit_and_release(lock, expected_version=snap.version, append=msgs("q", "a"), run_id="r1")

    assert (result.version, result.total) == (1, 2)
    assert store.committed(key, "r1") == 0
    store.acquire(key, lease=10, wait=0).release()  # free


def test_a_refused_commit_and_release_keeps_the_lock(store: SessionStore, key: SessionKey) -> None:
    lock, snap = store.acquire_and_load(key, lease=10, wait=0)
    store.commit(key, expected_version=None, append=msgs("sneaked in"))

    with pytest.raises(VersionConflict):
        store.commit_and_release(lock, expected_version=snap.version, append=msgs("late"))

    with pytest.raises(SessionBusy):  # still ours, for the caller to release
        store.acquire(key, lease=10, wait=0)
    lock.release()


def test_commit_and_release_never_frees_another_holders_lock(store: SessionStore, key: SessionKey) -> None:
    lapsed, snap = store.acquire_and_load(key, lease=0.2, wait=0)
    time.sleep(0.4)
    other = store.acquire(key, lease=10, wait=0)

    store.commit_and_release(lapsed, expected_version=snap.version, append=msgs("late but unchanged"))

    with pytest.raises(SessionBusy):  # the other holder keeps it
        store.acquire(key, lease=10, wait=0)
    other.release()
