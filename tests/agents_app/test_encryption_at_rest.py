"""Encryption at rest seen from the outside: with the key set the API and the console read a
session as before while Redis holds only sealed payloads; a store read without its key answers
``503`` naming the setting, never garbage; turning the key on keeps plain sessions going."""

from __future__ import annotations

from sessions_app.models import Session
from sessions_app.selectors import session_key
from sessions_app.stores.redis.client import prefix
from sessions_app.stores.sealing import Sealer, is_sealed

KEY = "an-encryption-key-for-the-api-tests-0123456789"


def talk(client, session_id: str, *messages: str) -> list[str]:
    replies = [client.post("/run", {"agent": "echo", "message": m, "session_id": session_id}) for m in messages]
    assert [r.status_code for r in replies] == [200] * len(messages), [r.content for r in replies]
    return [r.json()["result"] for r in replies]


def test_the_api_and_the_console_read_a_sealed_session_as_before(alice, make_store, use_store, admin_client) -> None:
    store = use_store(make_store("redis", sealer=Sealer([KEY])))
    replies = talk(alice, "sealed", "kumquat one", "kumquat two")
    assert replies == ["echo[turns=1]: kumquat one", "echo[turns=2]: kumquat two"]

    messages = alice.get("/sessions/sealed/messages").json()["messages"]
    assert [m["content"] for m in messages] == [
        "kumquat one",
        "echo[turns=1]: kumquat one",
        "kumquat two",
        "echo[turns=2]: kumquat two",
    ]
    session = Session.objects.get(tenant=alice.tenant, session_id="sealed")
    page = admin_client.get(f"/admin/sessions_app/thread/{session.thread_id}/change/").content.decode()
    assert "echo[turns=2]: kumquat two" in page
    stored = store.client.lrange(prefix(session_key(session)) + "msgs", 0, -1)
    assert len(stored) == 4 and all(is_sealed(m) and b"kumquat" not in m for m in stored)


def test_a_sealed_store_read_without_its_key_answers_503_naming_the_setting(
    alice, make_store, use_store, admin_client
) -> None:
    use_store(make_store("redis", sealer=Sealer([KEY])))
    talk(alice, "locked", "hello")
    # The process restarted without AK_SESSION__ENCRYPTION_KEY, or with a wrong one.
    for key in ([], ["another-key-that-never-sealed-anything-012345"]):
        use_store(make_store("redis", sealer=Sealer(key)))
        page = alice.get("/sessions/locked/messages")
        assert page.status_code == 503
        assert page.json()["code"] == "store_unreadable" and "AK_SESSION__ENCRYPTION_KEY" in page.json()["detail"]
        assert "hello" not in page.content.decode()
    session = Session.objects.get(tenant=alice.tenant, session_id="locked")
    console = admin_client.get(f"/admin/sessions_app/thread/{session.thread_id}/change/").content.decode()
    assert "AK_SESSION__ENCRYPTION_KEY does not list" in console and "hello" not in console


def test_turning_the_key_on_keeps_plain_sessions_going(alice, make_store, use_store) -> None:
    use_store(make_store("redis"))
    talk(alice, "before", "one")
    use_store(make_store("redis", sealer=Sealer([KEY])))
    assert talk(alice, "before", "two") == ["echo[turns=2]: two"]
    contents = [m["content"] for m in alice.get("/sessions/before/messages").json()["messages"]]
    assert contents == ["one", "echo[turns=1]: one", "two", "echo[turns=2]: two"]
