"""Streams, cancel, busy, in process (issue 23, item 7): what a browser's ``EventSource`` sends is
served; ``Last-Event-ID`` at or after the end of an ended run is a ``204``; a cancel of a running
run is a ``202`` that says so; a request its busy session turns away is not a failed run.

Through the real server: ``tests/live/test_streaming.py`` and, with a real ``EventSource``,
``tests/browser/test_event_source.py``."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from agents_app.models import Run
from agents_app.runs import transitions
from agents_app.runs.submit import RunRequest, run_record
from console.site import console_overview
from sessions_app.admin_scoping import Scope
from sessions_app.stores import get_store
from sessions_app.stores.base import SessionKey
from tests.agents_app.test_streaming import events_of

EVENT_STREAM = "text/event-stream"
ACCEPTS = [
    pytest.param({"HTTP_ACCEPT": EVENT_STREAM}, id="event-stream"),
    pytest.param({"HTTP_ACCEPT": "*/*"}, id="any"),
    pytest.param({}, id="none"),
    pytest.param({"HTTP_ACCEPT": "text/event-stream, application/json;q=0.5"}, id="both"),
]


def finished_run(alice, session_id: str = "neg") -> str:
    return alice.post("/run", {"agent": "echo", "message": "a b", "session_id": session_id}).json()["run_id"]


def is_json(response) -> bool:
    return response["Content-Type"] == "application/json"


# --- Accept: text/event-stream ------------------------------------------------------------------


@pytest.mark.parametrize("accept", ACCEPTS)
def test_the_events_are_served_to_an_event_source_accept(alice, accept: dict) -> None:
    run_id = finished_run(alice)
    response = alice.get(f"/runs/{run_id}/events", **accept)
    assert response.status_code == 200
    assert response["Content-Type"].startswith(EVENT_STREAM)
    assert [kind for _, kind, _ in events_of(response)] == ["run", "delta", "delta", "delta", "done"]


def test_errors_before_the_stream_are_json_to_a_client_that_accepts_only_the_stream(alice, make_tenant) -> None:
    run_id = finished_run(alice)
    accept = {"HTTP_ACCEPT": EVENT_STREAM}
    anonymous = APIClient().get(f"/runs/{run_id}/events", **accept)
    assert anonymous.status_code == 401 and is_json(anonymous)
    assert anonymous.json()["code"] == "not_authenticated"
    another = make_tenant().get(f"/runs/{run_id}/events", **accept)
    assert another.status_code == 404 and is_json(another) and another.json()["code"] == "not_found"
    unknown = alice.get("/runs/00000000-0000-4000-8000-000000000000/events", **accept)
    assert unknown.status_code == 404 and is_json(unknown)
    bad = alice.get(f"/runs/{run_id}/events", HTTP_LAST_EVENT_ID="x", **accept)
    assert bad.status_code == 400 and is_json(bad) and "Last-Event-ID" in bad.json()["fields"]

    stream = {"agent": "echo", "message": "x", "stream": True}
    no_agent = alice.post("/run", {**stream, "agent": "nobody"}, **accept)
    assert no_agent.status_code == 404 and is_json(no_agent)
    invalid = alice.post("/run", {**stream, "message": 3}, **accept)
    assert invalid.status_code == 400 and is_json(invalid) and "message" in invalid.json()["fields"]
    unauthenticated = APIClient().post("/run", stream, format="json", **accept)
    assert unauthenticated.status_code == 401 and is_json(unauthenticated)
    queued = alice.post("/run", {"agent": "echo", "message": "later", "async": True}, **accept)
    assert queued.status_code == 202 and is_json(queued) and queued.json()["status"] == "queued"


def test_an_accept_neither_json_nor_the_stream_is_still_a_406_in_json(alice) -> None:
    response = alice.get(f"/runs/{finished_run(alice)}/events", HTTP_ACCEPT="image/png")
    assert response.status_code == 406 and is_json(response) and response.json()["code"] == "not_acceptable"


# --- Last-Event-ID at or after the end: 204 ------------------------------------------------------


def test_last_event_id_at_or_after_the_end_of_an_ended_run_is_a_204(alice) -> None:
    run_id = finished_run(alice)
    everything = events_of(alice.get(f"/runs/{run_id}/events"))
    last = everything[-1][0]
    assert everything[-1][1] == "done"
    for after in (last, last + 1, 100):
        response = alice.get(f"/runs/{run_id}/events", HTTP_LAST_EVENT_ID=str(after), HTTP_ACCEPT=EVENT_STREAM)
        assert response.status_code == 204, after
        assert response.content == b""
    # Before the end, the rest is sent, the end once.
    assert events_of(alice.get(f"/runs/{run_id}/events", HTTP_LAST_EVENT_ID=str(last - 1))) == everything[-1:]


def test_an_end_only_its_row_records_is_sent_once(alice, django_capture_on_commit_callbacks) -> None:
    """A run cancelled before it started has no events in its log: its end is sent as event 1,
    and a client that has seen it gets a 204."""
    with django_capture_on_commit_callbacks(execute=True):
        run, _ = run_record(RunRequest("echo", "never", mode="queued"), tenant=alice.tenant)
    assert alice.post(f"/runs/{run.pk}/cancel").status_code == 200
    assert [(i, kind) for i, kind, _ in events_of(alice.get(f"/runs/{run.pk}/events"))] == [(1, "cancelled")]
    for after in ("1", "2"):
        assert alice.get(f"/runs/{run.pk}/events", HTTP_LAST_EVENT_ID=after).status_code == 204


def test_an_end_missing_from_a_log_is_sent_after_the_last_event_seen(alice) -> None:
    """A log whose end was not written (the store failed then): the end its row records comes
    after the log's last event, once; after it, 204."""
    done = Run.objects.select_related("session", "agent").get(pk=finished_run(alice, "lost-end"))
    failed = Run.objects.create(
        tenant=alice.tenant, session=done.session, agent=done.agent, message="m", status=Run.Status.FAILED, error="x"
    )
    key = SessionKey(tenant=alice.tenant.slug, session_id="lost-end")
    get_store().append_events(key, str(failed.pk), [("run", {"run_id": str(failed.pk)}), ("delta", {"text": "x"})])
    events = events_of(alice.get(f"/runs/{failed.pk}/events"))
    assert [(i, kind) for i, kind, _ in events] == [(1, "run"), (2, "delta"), (3, "error")]
    assert events_of(alice.get(f"/runs/{failed.pk}/events", HTTP_LAST_EVENT_ID="2")) == events[2:]
    for after in ("3", "4"):
        assert alice.get(f"/runs/{failed.pk}/events", HTTP_LAST_EVENT_ID=after).status_code == 204


# --- Cancel: 202 while running ------------------------------------------------------------------


def test_cancelling_a_running_run_is_a_202_with_cancel_requested_at(alice) -> None:
    run = run_record(RunRequest("echo", "working", mode="queued"), tenant=alice.tenant)[0]
    assert transitions.claim(run_id=str(run.pk), worker="elsewhere@host:1") is not None  # a worker has it
    response = alice.post(f"/runs/{run.pk}/cancel")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "running" and body["cancel_requested_at"] is not None
    again = alice.post(f"/runs/{run.pk}/cancel")
    assert again.status_code == 202 and again.json()["cancel_requested_at"] == body["cancel_requested_at"]
    assert alice.get(f"/runs/{run.pk}").json()["cancel_requested_at"] == body["cancel_requested_at"]


def test_cancelling_a_queued_run_is_a_200_cancelled_and_an_ended_one_stays_as_it_was(alice) -> None:
    queued = run_record(RunRequest("echo", "later", mode="queued"), tenant=alice.tenant)[0]
    response = alice.post(f"/runs/{queued.pk}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled" and response.json()["cancel_requested_at"] is not None
    done = finished_run(alice)
    ended = alice.post(f"/runs/{done}/cancel")
    assert ended.status_code == 200
    assert (ended.json()["status"], ended.json()["cancel_requested_at"]) == ("succeeded", None)


# --- A busy session's rejection is not a failed run --------------------------------------------


def failed_count() -> float:
    return REGISTRY.get_sample_value("ak_runs_total", {"status": "failed", "agent": "echo"}) or 0.0


@pytest.mark.parametrize("stream", [False, True], ids=["sync", "stream"])
def test_a_busy_rejection_is_not_a_failed_run(alice, stream: bool) -> None:
    session_id = f"busy-{stream}"
    assert finished_run(alice, session_id)  # the session has a run already
    counted = failed_count()
    held = get_store().acquire(SessionKey(tenant=alice.tenant.slug, session_id=session_id), lease=30, wait=0)
    body = {"agent": "echo", "message": "x", "session_id": session_id, "on_busy": "reject", "stream": stream}
    response = alice.post("/run", body, HTTP_IDEMPOTENCY_KEY=f"k-{stream}", HTTP_ACCEPT=EVENT_STREAM)
    assert response.status_code == 409 and is_json(response)
    assert response.json()["code"] == "session_busy" and "run_id" not in response.json()
    held.release()

    runs = alice.get(f"/sessions/{session_id}/runs").json()["runs"]
    assert [run["status"] for run in runs] == ["succeeded"]
    overview = console_overview(scope=Scope(everything=False, tenant=alice.tenant))
    assert overview["recent_errors"] == []
    assert dict(overview["runs_by_status"])["failed"] == 0
    assert failed_count() == counted

    # The same request again, with the same Idempotency-Key, now runs: nothing was kept of the first.
    again = alice.post("/run", {**body, "stream": False}, HTTP_IDEMPOTENCY_KEY=f"k-{stream}")
    assert again.status_code == 200 and again.json()["result"] == "echo[turns=2]: x"


def test_a_transition_withdraws_only_a_running_run_its_worker_holds(alice) -> None:
    runs = {
        status: run_record(RunRequest("echo", status, mode="queued"), tenant=alice.tenant)[0]
        for status in Run.Status.values
    }
    for status, run in runs.items():
        Run.objects.filter(pk=run.pk).update(status=status, worker="w@host:1")
    assert not transitions.withdraw(runs["running"], worker="other@host:2")
    for status, run in runs.items():
        assert transitions.withdraw(run, worker="w@host:1") == (status == "running"), status
    left = set(Run.objects.filter(tenant=alice.tenant).values_list("status", flat=True))
    assert left == set(Run.Status.values) - {"running"}


def test_the_document_says_so() -> None:
    document = APIClient().get("/api/schema/", {"format": "json"}).json()
    events = document["paths"]["/runs/{run_id}/events"]["get"]
    assert set(events["responses"]["200"]["content"]) == {EVENT_STREAM} and "204" in events["responses"]
    cancel = document["paths"]["/runs/{run_id}/cancel"]["post"]["responses"]
    assert cancel["202"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/RunOutput"}
    assert "cancel_requested_at" in document["components"]["schemas"]["RunOutput"]["properties"]
    run = document["paths"]["/run"]["post"]
    assert set(run["responses"]["202"]["content"]) == {"application/json"}
    for operation in (events, run):  # DRF's ?format= is not the way to ask for the stream: Accept is
        assert "format" not in {parameter["name"] for parameter in operation.get("parameters", [])}
