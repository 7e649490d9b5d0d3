"""Streaming through the real server (gunicorn, uvicorn's worker) and a Celery worker: runs'
events as Server-Sent Events, across processes through the session store."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest
import requests

from tests.live.queue import Queue

pytestmark = pytest.mark.slow


def sse(response: requests.Response) -> Iterator[tuple[int, str, dict]]:
    """(id, event, data) of each event of a streaming response, as they arrive."""
    fields: dict[str, str] = {}
    for line in response.iter_lines(decode_unicode=True):
        if line == "":
            if "event" in fields:
                yield int(fields["id"]), fields["event"], json.loads(fields["data"])
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value


def stream(queue: Queue, method: str, path: str, **kwargs: object) -> requests.Response:
    response = requests.request(
        method,
        f"{queue.platform.url}{path}",
        headers={**queue.headers, **kwargs.pop("headers", {})},
        stream=True,
        timeout=60,
        **kwargs,
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return response


def test_a_sync_run_streams_word_by_word_and_a_disconnect_does_not_cancel_it(start_queue) -> None:
    queue: Queue = start_queue("redis", workers=1)
    body = {"agent": "echo", "message": "hello  streaming world", "session_id": f"st-{uuid.uuid4().hex[:6]}"}
    events = list(sse(stream(queue, "POST", "/run", json={**body, "stream": True})))
    assert [(i, kind) for i, kind, _ in events] == [
        (1, "run"),
        (2, "delta"),
        (3, "delta"),
        (4, "delta"),
        (5, "delta"),
        (6, "done"),
    ]
    deltas = [data["text"] for _, kind, data in events if kind == "delta"]
    assert "".join(deltas) == events[-1][2]["result"] == "echo[turns=1]: hello  streaming world"

    slow = queue.agent("slow", delay_s=1)
    session_id = f"gone-{uuid.uuid4().hex[:6]}"
    response = stream(
        queue, "POST", "/run", json={"agent": slow, "message": "stay", "session_id": session_id, "stream": True}
    )
    first = next(sse(response))
    assert first[1] == "run"
    response.close()  # the client goes away mid-run
    done = queue.finished(first[2]["run_id"], timeout=30)
    assert (done["status"], done["result"]) == ("succeeded", "echo[turns=1]: stay")
    assert [m["content"] for m in queue.messages(session_id)] == ["stay", "echo[turns=1]: stay"]


def test_a_worker_run_streams_to_a_client_that_reconnects_with_last_event_id(start_queue) -> None:
    queue: Queue = start_queue("redis", workers=1)
    agent = queue.agent("model", delay_s=2)
    run_id = queue.enqueue(agent, "from a worker", f"w-{uuid.uuid4().hex[:6]}")["run_id"]
    first = stream(queue, "GET", f"/runs/{run_id}/events")
    seen = next(sse(first))
    assert seen[:2] == (1, "run") and seen[2]["run_id"] == run_id
    first.close()  # the connection drops while the model works

    again = stream(queue, "GET", f"/runs/{run_id}/events", headers={"Last-Event-ID": str(seen[0])})
    rest = list(sse(again))
    assert [kind for _, kind, _ in rest] == ["delta", "delta", "delta", "delta", "done"]  # nothing twice
    assert [i for i, _, _ in rest] == list(range(2, 7))
    assert "".join(d["text"] for _, k, d in rest if k == "delta") == rest[-1][2]["result"]
    assert queue.run(run_id)["status"] == "succeeded"


def test_cancel_a_streaming_run(start_queue) -> None:
    queue: Queue = start_queue("redis", workers=1)
    agent = queue.agent("slow", delay_s=20)
    session_id = f"cs-{uuid.uuid4().hex[:6]}"
    response = stream(
        queue, "POST", "/run", json={"agent": agent, "message": "stop", "session_id": session_id, "stream": True}
    )
    events = sse(response)
    run_id = next(events)[2]["run_id"]
    started = time.monotonic()
    cancel = queue.post(f"/runs/{run_id}/cancel", {})
    assert cancel.status_code == 202  # running: asked for, it ends cancelled shortly
    assert cancel.json()["status"] == "running" and cancel.json()["cancel_requested_at"] is not None
    last = next(events)
    assert (last[1], last[2]["code"]) == ("cancelled", "run_cancelled")
    assert time.monotonic() - started < 10  # at its process's next beat, not after the model's 20 s
    assert queue.run(run_id)["status"] == "cancelled"
    assert queue.messages(session_id) == []


def test_a_sync_run_whose_client_gives_up_still_ends_and_commits(start_queue) -> None:
    queue: Queue = start_queue("redis", workers=1)
    slow = queue.agent("slow", delay_s=1.5)
    session_id = f"gaveup-{uuid.uuid4().hex[:6]}"
    body = {"agent": slow, "message": "keep going", "session_id": session_id}
    with pytest.raises(requests.exceptions.ReadTimeout):  # the client hangs up after 0.5 s
        requests.post(f"{queue.platform.url}/run", json=body, headers=queue.headers, timeout=0.5)
    deadline = time.monotonic() + 30
    while [m["content"] for m in queue.messages(session_id)] != ["keep going", "echo[turns=1]: keep going"]:
        assert time.monotonic() < deadline, "the run did not end after its client went away"
        time.sleep(0.2)
    (run,) = queue.get(f"/sessions/{session_id}/runs").json()["runs"]
    assert (run["status"], run["result"]) == ("succeeded", "echo[turns=1]: keep going")


def test_a_streaming_client_that_asked_for_it_cancels_its_run_by_going_away(start_queue) -> None:
    queue: Queue = start_queue("redis", workers=1)
    slow = queue.agent("slow", delay_s=20)
    session_id = f"cod-{uuid.uuid4().hex[:6]}"
    body = {"agent": slow, "message": "drop me", "session_id": session_id, "stream": True, "cancel_on_disconnect": True}
    response = stream(queue, "POST", "/run", json=body)
    run_id = next(sse(response))[2]["run_id"]
    response.close()
    done = queue.finished(run_id, timeout=15)  # at its process's next beat, not after the model's 20 s
    assert done["status"] == "cancelled"
    assert queue.messages(session_id) == []
