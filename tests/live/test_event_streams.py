"""Streams, cancel, busy through the real server (gunicorn, uvicorn's worker, Celery over Redis):
``Accept: text/event-stream`` on both event endpoints, ``204`` after an ended run's last event,
``202`` for a cancel of a running run, and a busy session's ``409`` that leaves no failed run.
(With a real browser's ``EventSource``: ``tests/browser/test_event_source.py``.)"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from sessions_app.stores.base import SessionKey
from tests.live.queue import Queue
from tests.live.test_streaming import sse, stream

pytestmark = pytest.mark.slow

EVENT_STREAM = {"Accept": "text/event-stream"}
TOKEN = "event-streams-metrics-token-0123456789abcdef"


def failed_runs(queue: Queue) -> float:
    """``ak_runs_total{status="failed"}``, over every process of the platform."""
    response = requests.get(f"{queue.platform.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert response.status_code == 200, response.text
    return sum(
        sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == "ak_runs_total" and sample.labels["status"] == "failed"
    )


def test_streams_cancel_and_busy_through_the_server(start_queue, make_store, tmp_path: Path) -> None:
    env = {"AK_METRICS__TOKEN": TOKEN, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    queue: Queue = start_queue("redis", workers=0, env=env)  # a worker joins later
    tag = uuid.uuid4().hex[:6]

    # POST /run {"stream": true} and GET /runs/<id>/events, as an EventSource asks for them.
    body = {"agent": "echo", "message": "to a browser", "session_id": f"acc-{tag}", "stream": True}
    events = list(sse(stream(queue, "POST", "/run", json=body, headers=EVENT_STREAM)))
    assert [kind for _, kind, _ in events] == ["run", "delta", "delta", "delta", "delta", "done"]
    run_id, last = events[0][2]["run_id"], events[-1][0]
    assert list(sse(stream(queue, "GET", f"/runs/{run_id}/events", headers=EVENT_STREAM))) == events
    for after in (last, last + 1, 100):
        again = requests.get(
            f"{queue.platform.url}/runs/{run_id}/events",
            headers={**queue.headers, **EVENT_STREAM, "Last-Event-ID": str(after)},
            timeout=30,
        )
        assert (again.status_code, again.content) == (204, b""), after
    # Before the stream, errors are JSON, whatever the client accepts.
    anonymous = requests.get(f"{queue.platform.url}/runs/{run_id}/events", headers=EVENT_STREAM, timeout=30)
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "not_authenticated"
    unknown = queue.post("/run", {**body, "agent": "nobody"}, **EVENT_STREAM)
    assert unknown.status_code == 404 and unknown.headers["Content-Type"] == "application/json"

    # Cancel: a queued run (no worker yet) is cancelled at once; a running one is asked to stop.
    slow = queue.agent("slow", delay_s=60)
    waiting = queue.enqueue(slow, "never runs", f"q-{tag}")["run_id"]
    cancelled = queue.post(f"/runs/{waiting}/cancel", {})
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["cancel_requested_at"] is not None
    working = queue.enqueue(slow, "stop me", f"r-{tag}")["run_id"]
    queue.add_worker()
    queue.wait(working, lambda run: run["status"] == "running")
    asked = queue.post(f"/runs/{working}/cancel", {})
    assert asked.status_code == 202, asked.text
    assert asked.json()["status"] == "running" and asked.json()["cancel_requested_at"] is not None
    ended = queue.finished(working)  # at the worker's next beat, not after the model's 60 s
    assert (ended["status"], ended["cancel_requested_at"]) == ("cancelled", asked.json()["cancel_requested_at"])
    assert queue.post(f"/runs/{working}/cancel", {}).status_code == 200  # ended: it stays as it was
    assert queue.messages(f"r-{tag}") == []

    # A busy session's rejection: 409, and no failed run anywhere.
    session_id = f"busy-{tag}"
    assert queue.post("/run", {"agent": "echo", "message": "first", "session_id": session_id}).status_code == 200
    failed = failed_runs(queue)
    held = make_store("redis").acquire(
        SessionKey(tenant=queue.platform.tenant, session_id=session_id), lease=60, wait=0
    )
    try:
        for streamed in (False, True):
            busy = {"agent": "echo", "message": "x", "session_id": session_id, "on_busy": "reject", "stream": streamed}
            rejected = queue.post("/run", busy, **EVENT_STREAM)
            assert rejected.status_code == 409 and rejected.json()["code"] == "session_busy"
    finally:
        held.release()
    runs = queue.get(f"/sessions/{session_id}/runs").json()["runs"]
    assert [run["status"] for run in runs] == ["succeeded"]
    assert failed_runs(queue) == failed
