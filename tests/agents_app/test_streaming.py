"""``GET /runs/<id>/events`` in process, over the runs' logs in the store (Server-Sent Events).

``POST /run {"stream": true}``, whose run outlives the view's event loop, and live streams are
tested through the real server in ``tests/live/test_streaming.py``."""

from __future__ import annotations

import asyncio
import json

import pytest

from agents_app.models import Run
from agents_app.services import agent_create


def events_of(response) -> list[tuple[int, str, dict]]:
    """The (id, event, data) of an SSE response, read to its end."""

    async def read() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    body = asyncio.run(read()).decode()
    found = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if fields:
            found.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
    return found


def test_the_events_of_a_finished_run_are_replayed_and_resume_after_last_event_id(alice) -> None:
    run_id = alice.post("/run", {"agent": "echo", "message": "a  b c", "session_id": "re"}).json()["run_id"]
    everything = events_of(alice.get(f"/runs/{run_id}/events"))
    assert [(i, kind) for i, kind, _ in everything] == [
        (1, "run"),
        (2, "delta"),
        (3, "delta"),
        (4, "delta"),
        (5, "delta"),
        (6, "done"),
    ]
    assert everything[0][2] == {"run_id": run_id, "session_id": "re"}
    deltas = [data["text"] for _, kind, data in everything if kind == "delta"]
    assert deltas == ["echo[turns=1]: ", "a  ", "b ", "c"]  # word by word, the spaces kept
    assert everything[-1][2] == {"run_id": run_id, "session_id": "re", "result": "".join(deltas)}
    rest = events_of(alice.get(f"/runs/{run_id}/events", HTTP_LAST_EVENT_ID="3"))
    assert rest == everything[3:]  # after event 3, nothing twice
    assert alice.get(f"/runs/{run_id}/events", HTTP_LAST_EVENT_ID="x").status_code == 400


def test_a_failed_run_ends_its_events_with_an_error(alice, settings) -> None:
    settings.AK_RUN = {**settings.AK_RUN, "TIME_LIMIT": 0.2}
    agent_create(tenant=alice.tenant, name="slow", framework="echo", config={"delay_s": 5})
    assert alice.post("/run", {"agent": "slow", "message": "x"}).status_code == 504
    run_id = Run.objects.get(tenant=alice.tenant).pk
    events = events_of(alice.get(f"/runs/{run_id}/events"))
    assert [kind for _, kind, _ in events] == ["run", "error"]
    assert events[-1][2]["code"] == "run_timeout"


def test_a_run_cancelled_before_it_started_ends_its_events_with_cancelled(alice, django_capture_on_commit_callbacks):
    from agents_app.runs.submit import RunRequest, run_record

    with django_capture_on_commit_callbacks(execute=True):
        run, _ = run_record(RunRequest("echo", "never", mode="queued"), tenant=alice.tenant)
    assert alice.post(f"/runs/{run.pk}/cancel").json()["status"] == "cancelled"
    events = events_of(alice.get(f"/runs/{run.pk}/events"))
    assert [(i, kind, data["code"]) for i, kind, data in events] == [(1, "cancelled", "run_cancelled")]


def test_events_of_another_tenants_run_are_a_404(alice, make_tenant) -> None:
    run_id = alice.post("/run", {"agent": "echo", "message": "mine"}).json()["run_id"]
    assert make_tenant().get(f"/runs/{run_id}/events").status_code == 404


def test_stream_and_async_together_are_refused(alice) -> None:
    response = alice.post("/run", {"agent": "echo", "message": "x", "stream": True, "async": True})
    assert response.status_code == 400 and "stream" in response.json()["fields"]


@pytest.fixture
def store_down(make_store, use_store):
    """The process-wide store is a Redis that does not answer."""
    from tests.services import free_port

    return use_store(make_store("redis", url=f"redis://127.0.0.1:{free_port()}/0"))


def test_events_while_the_store_is_down_are_a_503(alice, make_store, use_store) -> None:
    run_id = alice.post("/run", {"agent": "echo", "message": "x"}).json()["run_id"]
    from tests.services import free_port

    use_store(make_store("redis", url=f"redis://127.0.0.1:{free_port()}/0"))
    response = alice.get(f"/runs/{run_id}/events")
    assert response.status_code == 503 and response.json()["code"] == "store_unavailable"


def test_a_stream_whose_run_cannot_start_is_a_json_error(alice, store_down) -> None:
    response = alice.post("/run", {"agent": "echo", "message": "x", "session_id": "down", "stream": True})
    assert response.status_code == 503 and response.json()["code"] == "store_unavailable"
    assert Run.objects.get(session__session_id="down").status == "failed"
