"""GET /sessions/<id>/messages and DELETE /sessions/<id>, on every backend."""

from __future__ import annotations

import pytest

from agents_app.models import Run
from sessions_app.models import Session, Thread
from sessions_app.stores import get_store
from sessions_app.stores.base import HANDOFF, SHARED_SCOPE, TOOL_CALL, Message, SessionKey


@pytest.fixture(params=["in_memory", "redis", "dynamodb"])
def backend(request, make_store, use_store):
    return use_store(make_store(request.param))


def test_text_messages_keep_their_shape_and_items_add_kind_and_data(alice, backend) -> None:
    alice.post("/run", {"agent": "echo", "message": "hi", "session_id": "items"})
    call = Message("assistant", "lookup({})", "planner", kind=TOOL_CALL, data={"name": "lookup", "arguments": {}})
    handoff = Message("assistant", "planner → echo", "planner", kind=HANDOFF, data={"from": "planner", "to": "echo"})
    backend.commit(SessionKey(alice.tenant.slug, "items"), expected_version=None, append=[call, handoff])
    shown = alice.get("/sessions/items/messages").json()["messages"]
    assert [set(m) for m in shown[:2]] == [{"role", "content", "agent", "created_at"}] * 2
    assert shown[2] | {"created_at": None} == {
        "role": "assistant",
        "content": "lookup({})",
        "agent": "planner",
        "created_at": None,
        "kind": "tool_call",
        "data": {"name": "lookup", "arguments": {}},
    }
    assert shown[3]["kind"] == "handoff" and shown[3]["data"]["to"] == "echo"
    assert alice.post("/run", {"agent": "echo", "message": "again", "session_id": "items"}).json()["result"] == (
        "echo[turns=2]: again"  # items are not turns
    )


def test_messages_page_with_a_cursor(alice, backend) -> None:
    for i in range(7):
        alice.post("/run", {"agent": "echo", "message": f"m{i}", "session_id": "paged"})
    seen, cursor, pages = [], None, 0
    while True:
        query = "limit=4" + (f"&cursor={cursor}" if cursor else "")
        body = alice.get(f"/sessions/paged/messages?{query}").json()
        seen += body["messages"]
        pages += 1
        cursor = body["next"]
        if cursor is None:
            break
    assert pages == 4 and len(seen) == 14
    assert [m["content"] for m in seen[:2]] == ["m0", "echo[turns=1]: m0"]
    assert [m["role"] for m in seen[:2]] == ["user", "assistant"]
    assert all(m["agent"] == "echo" and m["created_at"].endswith("Z") for m in seen)


def test_delete_reaches_the_store(alice, backend) -> None:
    alice.post("/run", {"agent": "echo", "message": "bye", "session_id": "doomed", "user_id": "u1"})
    key = SessionKey(tenant=alice.tenant.slug, session_id="doomed")
    backend.commit(key, expected_version=None, state={SHARED_SCOPE: {"k": 1}, "echo": {"k": 2}})
    assert alice.delete("/sessions/doomed").status_code == 204
    snap = backend.load(key, scopes=(SHARED_SCOPE, "echo"))
    assert (snap.version, snap.total, snap.state) == (0, 0, {SHARED_SCOPE: {}, "echo": {}})
    assert not Session.objects.filter(session_id="doomed").exists()
    assert not Thread.objects.filter(tenant=alice.tenant).exists()
    assert not Run.objects.filter(tenant=alice.tenant).exists()
    assert alice.get("/sessions/doomed/messages").status_code == 404
    assert alice.delete("/sessions/doomed").status_code == 404
    again = alice.post("/run", {"agent": "echo", "message": "new", "session_id": "doomed"}).json()
    assert again["result"] == "echo[turns=1]: new"


def test_delete_leaves_no_redis_key(alice, make_store, use_store) -> None:
    store = use_store(make_store("redis"))
    alice.post("/run", {"agent": "echo", "message": "x", "session_id": "gone"})
    pattern = f"ak:{{{alice.tenant.slug}:gone}}:*"
    assert store.client.keys(pattern)
    alice.delete("/sessions/gone")
    assert store.client.keys(pattern) == []


def test_an_empty_session_has_no_pages(alice) -> None:
    alice.post("/run", {"agent": "echo", "message": "x", "session_id": "one"})
    body = alice.get("/sessions/one/messages?cursor=100").json()
    assert body == {"messages": [], "next": None}
    assert get_store().load(SessionKey(tenant=alice.tenant.slug, session_id="one")).total == 2


def test_expired_sessions_are_purged_from_the_store_and_the_index(alice, backend) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from sessions_app.tasks import purge_expired_sessions

    for session_id in ("old", "fresh"):
        alice.post("/run", {"agent": "echo", "message": "hi", "session_id": session_id})
    Session.objects.filter(session_id="old").update(expires_at=timezone.now() - timedelta(seconds=1))
    assert purge_expired_sessions() == 1
    assert list(Session.objects.values_list("session_id", flat=True)) == ["fresh"]
    assert not Run.objects.filter(session__session_id="old").exists()
    old, fresh = (SessionKey(tenant=alice.tenant.slug, session_id=s) for s in ("old", "fresh"))
    assert (backend.load(old).total, backend.load(fresh).total) == (0, 2)
    assert backend.history(old) == []
