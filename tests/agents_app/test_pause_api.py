"""Runs that wait for a person, through the API in process: ``echo`` with ``"approval": true``.

A sync run that pauses answers 202 with the run; ``POST /runs/<id>/resume`` goes on with the
person's decisions; the session refuses other runs meanwhile (``run_paused``) unless they cancel
the paused run; a cancel ends it. Streamed ``POST /run`` and workers are in the live tests.
"""

from __future__ import annotations

import pytest

from agents_app.models import Run
from agents_app.services import agent_create
from sessions_app.stores import get_store
from sessions_app.stores.base import SessionKey
from tests.agents_app.test_streaming import events_of

PAUSE = {"kind": "approval", "requests": [{"id": "echo", "tool": "echo", "arguments": {"message": "hi"}}]}


@pytest.fixture
def approver(alice):
    agent_create(tenant=alice.tenant, name="approver", framework="echo", config={"approval": True})
    return alice


def paused_run(client, message: str = "hi", session_id: str = "s-1") -> dict:
    response = client.post("/run", {"agent": "approver", "message": message, "session_id": session_id})
    assert response.status_code == 202, response.content
    return response.json()


def history(client, session_id: str = "s-1") -> list[str]:
    return [m.content for m in get_store().history(SessionKey(tenant=client.tenant.slug, session_id=session_id))]


def approve(client, run_id: str, approve: bool = True, **extra) -> object:
    return client.post(f"/runs/{run_id}/resume", {"decisions": [{"id": "echo", "approve": approve}], **extra})


def test_a_sync_run_that_pauses_answers_202_with_the_run_and_its_pause(approver) -> None:
    response = approver.post("/run", {"agent": "approver", "message": "hi", "session_id": "s-1"})
    assert response.status_code == 202
    body = response.json()
    assert response["Location"].endswith(f"/runs/{body['run_id']}")
    assert (body["status"], body["pause"], body["result"], body["session_id"]) == ("paused", PAUSE, None, "s-1")
    assert body["paused_at"] is not None and body["finished_at"] is None
    assert approver.get(f"/runs/{body['run_id']}").json() == body
    assert history(approver) == ["hi"]  # the user's message is kept, the reply waits
    run = Run.objects.get(pk=body["run_id"])
    assert (run.worker, run.heartbeat_at) == ("", None)  # no process holds it


def test_approved_it_replies_as_usual_counting_its_message_once(approver) -> None:
    run_id = paused_run(approver)["run_id"]
    response = approve(approver, run_id)
    assert response.status_code == 200
    assert response.json() == {"result": "echo[turns=1]: hi", "session_id": "s-1", "run_id": run_id}
    shown = approver.get(f"/runs/{run_id}").json()
    assert (shown["status"], shown["result"], shown["pause"]) == ("succeeded", "echo[turns=1]: hi", None)
    assert history(approver) == ["hi", "echo[turns=1]: hi"]
    follow = approver.post("/run", {"agent": "echo", "message": "next", "session_id": "s-1"}).json()
    assert follow["result"] == "echo[turns=2]: next"


def test_denied_it_says_so(approver) -> None:
    run_id = paused_run(approver)["run_id"]
    response = approver.post(
        f"/runs/{run_id}/resume", {"decisions": [{"id": "echo", "approve": False, "message": "not now"}]}
    )
    assert response.status_code == 200
    assert response.json()["result"] == "echo[denied]: hi"
    assert Run.objects.get(pk=run_id).answer == {"decisions": {"echo": {"approve": False, "message": "not now"}}}


def test_a_run_resumes_once(approver) -> None:
    run_id = paused_run(approver)["run_id"]
    assert approve(approver, run_id).status_code == 200
    again = approve(approver, run_id)
    assert again.status_code == 409
    assert again.json()["code"] == "run_not_paused" and again.json()["run_id"] == run_id
    assert history(approver) == ["hi", "echo[turns=1]: hi"]
    done = approver.post("/run", {"agent": "echo", "message": "x"}).json()["run_id"]
    assert approve(approver, done).json()["code"] == "run_not_paused"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"decisions": []}, "'echo'"),
        ({"decisions": [{"id": "nope", "approve": True}, {"id": "echo", "approve": True}]}, "'nope'"),
        ({"decisions": [{"id": "echo", "approve": True}, {"id": "echo", "approve": False}]}, "Two decisions"),
        ({"input": "yes"}, "decisions"),
        ({"decisions": [{"id": "echo", "approve": True}], "input": 1}, "either"),
        ({}, "either"),
        ({"decisions": [{"id": "echo", "approve": "yes"}]}, "approve"),
        ({"decisions": [{"id": "echo", "approve": True}], "async": True, "stream": True}, "stream"),
    ],
)
def test_an_answer_that_does_not_fit_is_a_400_naming_what(approver, body, named) -> None:
    run_id = paused_run(approver)["run_id"]
    response = approver.post(f"/runs/{run_id}/resume", body)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert named in str(response.json()["fields"])
    assert Run.objects.get(pk=run_id).status == "paused"  # nothing changed
    assert approve(approver, run_id).status_code == 200


def test_a_new_run_on_the_session_is_refused_while_a_run_is_paused(approver) -> None:
    run_id = paused_run(approver)["run_id"]
    for body in (
        {"agent": "echo", "message": "x", "session_id": "s-1"},
        {"agent": "echo", "message": "x", "session_id": "s-1", "async": True},
    ):
        refused = approver.post("/run", body)
        assert refused.status_code == 409
        assert refused.json()["code"] == "run_paused" and refused.json()["run_id"] == run_id
    chat = approver.post("/api/v1/chat", {"agent": "echo", "prompt": "x", "session_id": "s-1"})
    assert chat.status_code == 409 and chat.json()["code"] == "run_paused"
    assert Run.objects.filter(session__session_id="s-1").count() == 1  # no run recorded
    assert approver.post("/run", {"agent": "echo", "message": "y", "session_id": "s-2"}).status_code == 200


def test_on_paused_cancel_cancels_the_paused_run_first(approver) -> None:
    run_id = paused_run(approver)["run_id"]
    body = {"agent": "echo", "message": "instead", "session_id": "s-1", "on_paused": "cancel"}
    response = approver.post("/run", body)
    assert response.status_code == 200
    assert response.json()["result"] == "echo[turns=2]: instead"  # the paused run's message stays
    cancelled = approver.get(f"/runs/{run_id}").json()
    assert (cancelled["status"], cancelled["pause"]) == ("cancelled", None)
    assert approve(approver, run_id).json()["code"] == "run_not_paused"
    assert approver.post("/run", {**body, "on_paused": "maybe"}).status_code == 400


def test_a_cancel_ends_a_paused_run_and_frees_its_session(approver) -> None:
    run_id = paused_run(approver)["run_id"]
    response = approver.post(f"/runs/{run_id}/cancel")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["error"]) == ("cancelled", "cancelled while paused")
    assert approver.post("/run", {"agent": "echo", "message": "x", "session_id": "s-1"}).status_code == 200
    assert approve(approver, run_id).status_code == 409


def test_another_tenant_cannot_see_resume_or_cancel_a_paused_run(approver, make_tenant) -> None:
    run_id = paused_run(approver)["run_id"]
    bob = make_tenant()
    assert approve(bob, run_id).status_code == 404
    assert bob.get(f"/runs/{run_id}").status_code == 404
    assert bob.post(f"/runs/{run_id}/cancel").status_code == 404
    # Bob's session of the same id is his own: Alice's pause does not hold it.
    assert bob.post("/run", {"agent": "echo", "message": "x", "session_id": "s-1"}).json()["result"] == (
        "echo[turns=1]: x"
    )
    assert Run.objects.get(pk=run_id).status == "paused"
    assert approve(approver, run_id).status_code == 200
    assert approve(approver, "not-a-uuid").status_code == 404


def test_the_events_of_a_paused_run_end_with_paused_and_go_on_after_its_resume(approver) -> None:
    run_id = paused_run(approver)["run_id"]
    events = events_of(approver.get(f"/runs/{run_id}/events"))
    assert [(i, kind) for i, kind, _ in events] == [(1, "run"), (2, "paused")]
    assert events[1][2] == PAUSE
    assert approver.get(f"/runs/{run_id}/events", HTTP_LAST_EVENT_ID="2").status_code == 204
    approve(approver, run_id)
    rest = events_of(approver.get(f"/runs/{run_id}/events", HTTP_LAST_EVENT_ID="2"))
    assert [kind for _, kind, _ in rest] == ["run", "delta", "delta", "done"]
    assert [i for i, _, _ in rest] == [3, 4, 5, 6]
    assert rest[-1][2]["result"] == "echo[turns=1]: hi"
    assert [kind for _, kind, _ in events_of(approver.get(f"/runs/{run_id}/events"))][:3] == ["run", "paused", "run"]


def test_an_async_resume_is_queued(approver, django_capture_on_commit_callbacks) -> None:
    run_id = paused_run(approver)["run_id"]
    with django_capture_on_commit_callbacks(execute=True):
        response = approve(approver, run_id, **{"async": True})
    assert response.status_code == 202
    assert response.json() == {"run_id": run_id, "session_id": "s-1", "status": "queued"}
    assert response["Location"].endswith(f"/runs/{run_id}")
    run = Run.objects.get(pk=run_id)
    assert (run.status, run.is_async, run.resumes, run.commit_id) == ("queued", True, 1, f"{run_id}.1")


def test_the_echo_approval_option_is_checked(alice) -> None:
    bad = alice.post("/agents", {"name": "a", "framework": "echo", "config": {"approval": "yes"}})
    assert bad.status_code == 400 and "config.approval" in bad.json()["fields"]
    assert alice.post("/agents", {"name": "b", "framework": "echo", "config": {"approval": False}}).status_code == 201


@pytest.fixture
def asker(alice, settings):
    settings.AK_FRAMEWORKS = {**settings.AK_FRAMEWORKS, "asking": "tests.frameworks.AskingFramework"}
    agent_create(tenant=alice.tenant, name="asker", framework="asking", config={})
    return alice


def test_a_question_is_answered_with_input_and_may_be_asked_again(asker) -> None:
    first = asker.post("/run", {"agent": "asker", "message": "greet me", "session_id": "q"})
    assert first.status_code == 202
    run_id = first.json()["run_id"]
    assert first.json()["pause"] == {"kind": "input", "prompt": {"question": "What is your name?", "about": "greet me"}}
    wrong = asker.post(f"/runs/{run_id}/resume", {"decisions": [{"id": "x", "approve": True}]})
    assert wrong.status_code == 400 and "input" in wrong.json()["fields"]
    again = asker.post(f"/runs/{run_id}/resume", {"input": "again"})
    assert again.status_code == 202
    assert again["Location"].endswith(f"/runs/{run_id}")
    assert (again.json()["status"], again.json()["pause"]["prompt"]["about"]) == ("paused", 2)
    answered = asker.post(f"/runs/{run_id}/resume", {"input": "Ada"})
    assert answered.status_code == 200
    assert answered.json()["result"] == "hello Ada (asked 2 times)"  # its state, committed with each pause
    assert history(asker, "q") == ["greet me", "hello Ada (asked 2 times)"]
    assert Run.objects.get(pk=run_id).resumes == 2


def test_the_chat_alias_answers_202_with_a_paused_run(approver) -> None:
    response = approver.post("/api/v1/chat", {"agent": "approver", "prompt": "hi", "session_id": "c"})
    assert response.status_code == 202
    assert (response.json()["status"], response.json()["pause"]) == ("paused", PAUSE)


def test_a_sync_resume_over_the_concurrent_run_limit_is_a_429_and_the_run_stays_paused(approver) -> None:
    run_id = paused_run(approver)["run_id"]
    approver.tenant.limit_concurrent_runs = 1
    approver.tenant.save()
    busy = approver.post("/run", {"agent": "echo", "message": "x", "session_id": "other"}).json()["run_id"]
    Run.objects.filter(pk=busy).update(status="running")
    refused = approve(approver, run_id)
    assert refused.status_code == 429 and refused.json()["limit"] == "concurrent_runs"
    assert Run.objects.get(pk=run_id).status == "paused"


def test_a_cancel_of_a_running_resume_revokes_that_resumes_commit(approver) -> None:
    from agents_app.runs import transitions
    from agents_app.runs.cancel import run_cancel
    from sessions_app.stores.base import RunRevoked

    run_id = paused_run(approver)["run_id"]
    run = Run.objects.select_related("session__tenant").get(pk=run_id)
    answer = {"decisions": {"echo": {"approve": True, "message": None}}}
    assert transitions.resume(run, answer=answer, worker="web@host:1")
    run.refresh_from_db()
    cancelled = run_cancel(run=run)
    assert (cancelled.status, cancelled.cancel_requested_at is not None) == ("running", True)
    key = SessionKey(tenant=approver.tenant.slug, session_id="s-1")
    with pytest.raises(RunRevoked):
        get_store().commit(key, expected_version=None, run_id=f"{run_id}.1")
