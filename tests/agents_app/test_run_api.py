"""POST /run and POST /api/v1/chat through the API, on the in-memory and Redis stores."""

from __future__ import annotations

import threading

import pytest

from agents_app.models import Run
from sessions_app.models import EndUser, Session
from sessions_app.stores import get_store
from sessions_app.stores.base import SessionKey


def test_a_run_makes_a_session_and_replies(alice) -> None:
    response = alice.post("/run", {"agent": "echo", "message": "hello"})
    assert response.status_code == 200
    body = response.json()
    assert body["result"] == "echo[turns=1]: hello"
    assert set(body) == {"result", "session_id", "run_id"}
    session = Session.objects.get(tenant=alice.tenant, session_id=body["session_id"])
    assert session.message_count == 2
    run = Run.objects.get(pk=body["run_id"])
    assert (run.status, run.result, run.session_id) == ("succeeded", body["result"], session.pk)


def test_turns_count_the_user_messages_of_the_session(alice) -> None:
    sid = "conversation-1"
    replies = [alice.post("/run", {"agent": "echo", "message": f"m{i}", "session_id": sid}).json() for i in range(3)]
    assert [r["result"] for r in replies] == [f"echo[turns={i + 1}]: m{i}" for i in range(3)]
    assert {r["session_id"] for r in replies} == {sid}
    stored = get_store().history(SessionKey(tenant=alice.tenant.slug, session_id=sid))
    assert [(m.role, m.content) for m in stored][:2] == [("user", "m0"), ("assistant", "echo[turns=1]: m0")]
    assert len(stored) == 6


def test_the_run_is_readable_by_id(alice) -> None:
    body = alice.post("/run", {"agent": "echo", "message": "x"}).json()
    run = alice.get(f"/runs/{body['run_id']}").json()
    assert run["status"] == "succeeded"
    assert (run["run_id"], run["session_id"], run["agent"], run["result"]) == (
        body["run_id"],
        body["session_id"],
        "echo",
        body["result"],
    )
    assert run["error"] is None and run["finished_at"] >= run["started_at"]


def test_user_id_names_the_end_user(alice) -> None:
    body = alice.post("/run", {"agent": "echo", "message": "x", "user_id": "user-42"}).json()
    session = Session.objects.get(session_id=body["session_id"])
    assert session.user == EndUser.objects.get(tenant=alice.tenant, external_id="user-42")
    assert session.thread.user == session.user


def test_the_chat_alias_speaks_agent_kernels_shape(alice) -> None:
    first = alice.post("/api/v1/chat", {"agent": "echo", "prompt": "hi", "session_id": "ak-1"})
    assert first.status_code == 200
    assert first.json() == {"result": "echo[turns=1]: hi", "session_id": "ak-1"}
    second = alice.post("/api/v1/chat", {"agent": "echo", "prompt": "again", "session_id": "ak-1", "user_id": "u"})
    assert second.json()["result"] == "echo[turns=2]: again"


def test_a_configured_echo_agent_waits(alice) -> None:
    assert alice.post("/agents", {"name": "slow", "framework": "echo", "config": {"delay_s": 0.2}}).status_code == 201
    response = alice.post("/run", {"agent": "slow", "message": "zz"})
    assert response.json()["result"] == "echo[turns=1]: zz"


def test_reject_answers_409_while_the_session_is_busy(alice) -> None:
    key = SessionKey(tenant=alice.tenant.slug, session_id="busy-1")
    held = get_store().acquire(key, lease=30, wait=0)
    response = alice.post("/run", {"agent": "echo", "message": "x", "session_id": "busy-1", "on_busy": "reject"})
    assert response.status_code == 409
    assert response.json()["code"] == "session_busy"
    held.release()
    assert get_store().load(key).total == 0
    ok = alice.post("/run", {"agent": "echo", "message": "x", "session_id": "busy-1", "on_busy": "reject"})
    assert ok.json()["result"] == "echo[turns=1]: x"


def test_enqueue_waits_its_turn(alice) -> None:
    key = SessionKey(tenant=alice.tenant.slug, session_id="busy-2")
    held = get_store().acquire(key, lease=30, wait=0)
    threading.Timer(0.3, held.release).start()
    response = alice.post("/run", {"agent": "echo", "message": "x", "session_id": "busy-2"})
    assert response.json()["result"] == "echo[turns=1]: x"


@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_in_threads_see_every_turn_once(make_tenant, make_store, use_store) -> None:
    alice = make_tenant()
    use_store(make_store("redis"))
    results: list[str] = []

    def call(i: int) -> None:
        from rest_framework.test import APIClient

        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {alice.key}")
        reply = client.post("/run", {"agent": "echo", "message": f"m{i}", "session_id": "shared"}, format="json")
        results.append(reply.json()["result"])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    turns = sorted(int(r.split("]")[0].split("=")[1]) for r in results)
    assert turns == list(range(1, 9))
    assert Session.objects.get(tenant=alice.tenant, session_id="shared").message_count == 16
