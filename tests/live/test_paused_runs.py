"""Runs that wait for a person, through the real server and Celery workers, over HTTP only: the
``counting`` echo with ``"approval": true`` pauses every run; ``POST /runs/<id>/resume`` goes on.

A paused run holds no worker: the workers can restart while it waits, and its resume runs once.
"""

from __future__ import annotations

import time
import uuid

import pytest

from tests.live.queue import Queue
from tests.live.test_streaming import sse, stream

pytestmark = pytest.mark.slow

APPROVE = {"decisions": [{"id": "echo", "approve": True}]}


def pause_of(message: str) -> dict:
    return {"kind": "approval", "requests": [{"id": "echo", "tool": "echo", "arguments": {"message": message}}]}


def session() -> str:
    return f"hitl-{uuid.uuid4().hex[:8]}"


def test_a_sync_run_pauses_and_its_resume_replies_over_the_web_tier(start_queue) -> None:
    queue: Queue = start_queue("redis")
    agent = queue.agent("approver", approval=True)
    sid = session()
    paused = queue.post("/run", {"agent": agent, "message": "sync hi", "session_id": sid})
    assert paused.status_code == 202, paused.text
    run_id = paused.json()["run_id"]
    assert paused.headers["Location"].endswith(f"/runs/{run_id}")
    assert (paused.json()["status"], paused.json()["pause"]) == ("paused", pause_of("sync hi"))
    assert queue.run(run_id)["status"] == "paused"
    refused = queue.post("/run", {"agent": agent, "message": "other", "session_id": sid})
    assert (refused.status_code, refused.json()["code"], refused.json()["run_id"]) == (409, "run_paused", run_id)
    resumed = queue.post(f"/runs/{run_id}/resume", APPROVE)  # any of gunicorn's processes
    assert resumed.status_code == 200, resumed.text
    assert resumed.json() == {"result": "echo[turns=1]: sync hi", "session_id": sid, "run_id": run_id}
    assert queue.post(f"/runs/{run_id}/resume", APPROVE).json()["code"] == "run_not_paused"
    assert [m["content"] for m in queue.messages(sid)] == ["sync hi", "echo[turns=1]: sync hi"]
    assert queue.invoked() == {"sync hi": 1, "resume:sync hi": 1}


def test_a_stream_ends_with_paused_and_the_streamed_resume_goes_on(start_queue) -> None:
    queue: Queue = start_queue("redis")
    agent = queue.agent("approver", approval=True)
    sid = session()
    body = {"agent": agent, "message": "streamed", "session_id": sid, "stream": True}
    events = list(sse(stream(queue, "POST", "/run", json=body)))
    assert [kind for _, kind, _ in events] == ["run", "paused"]
    run_id = events[0][2]["run_id"]
    assert events[1][2] == pause_of("streamed")
    rest = list(sse(stream(queue, "POST", f"/runs/{run_id}/resume", json={**APPROVE, "stream": True})))
    assert [kind for _, kind, _ in rest] == ["run", "delta", "delta", "done"]
    assert [i for i, _, _ in rest] == [3, 4, 5, 6]  # numbered after the run's events before its pause
    assert rest[-1][2]["result"] == "echo[turns=1]: streamed"
    replayed = list(sse(stream(queue, "GET", f"/runs/{run_id}/events")))
    assert [kind for _, kind, _ in replayed] == ["run", "paused", "run", "delta", "delta", "done"]


def test_a_queued_run_pauses_on_a_worker_that_restarts_and_its_resume_runs_once(start_queue) -> None:
    queue: Queue = start_queue("redis", fresh=True)  # its workers are stopped and replaced
    agent = queue.agent("approver", approval=True)
    sid = session()
    run_id = queue.enqueue(agent, "queued hi", sid)["run_id"]
    paused = queue.wait(run_id, lambda r: r["status"] == "paused", timeout=30)
    assert paused["pause"] == pause_of("queued hi")
    events = list(sse(stream(queue, "GET", f"/runs/{run_id}/events")))
    assert [kind for _, kind, _ in events] == ["run", "paused"]
    for worker in list(queue.workers.values()):
        worker.stop()
    queue.add_worker()
    time.sleep(3)  # past the heartbeat timeout: the sweeper would take back a run it thought lost
    assert queue.run(run_id)["status"] == "paused"
    resumed = queue.post(f"/runs/{run_id}/resume", {**APPROVE, "async": True})
    assert resumed.status_code == 202, resumed.text
    assert resumed.json() == {"run_id": run_id, "session_id": sid, "status": "queued"}
    done = queue.finished(run_id, timeout=60)
    assert (done["status"], done["result"]) == ("succeeded", "echo[turns=1]: queued hi")
    assert [m["content"] for m in queue.messages(sid)] == ["queued hi", "echo[turns=1]: queued hi"]
    assert queue.invoked() == {"queued hi": 1, "resume:queued hi": 1}  # each once, across the restart


def test_a_denied_run_says_so(start_queue) -> None:
    queue: Queue = start_queue("redis")
    agent = queue.agent("approver", approval=True)
    sid = session()
    run_id = queue.enqueue(agent, "rm -rf", sid)["run_id"]
    queue.wait(run_id, lambda r: r["status"] == "paused", timeout=30)
    denied = queue.post(f"/runs/{run_id}/resume", {"decisions": [{"id": "echo", "approve": False}]})
    assert denied.status_code == 200, denied.text
    assert denied.json()["result"] == "echo[denied]: rm -rf"
    follow = queue.post("/run", {"agent": "echo", "message": "next", "session_id": sid}).json()
    assert follow["result"] == "echo[turns=2]: next"


def test_a_paused_run_not_resumed_within_the_pause_ttl_is_cancelled(start_queue) -> None:
    """``AK_RUN__PAUSE_TTL`` is read when a process starts: a stack of its own with a TTL of 1 s
    (lent to no test that asks for another environment)."""
    queue: Queue = start_queue("redis", env={"AK_RUN__PAUSE_TTL": "1"})
    agent = queue.agent("approver", approval=True)
    sid = session()
    paused = queue.post("/run", {"agent": agent, "message": "too late", "session_id": sid})
    run_id = paused.json()["run_id"]
    ended = queue.wait(run_id, lambda r: r["status"] != "paused", timeout=30)
    assert (ended["status"], ended["pause"]) == ("cancelled", None)
    assert ended["error"].startswith("expired")
    assert queue.post(f"/runs/{run_id}/resume", APPROVE).json()["code"] == "run_not_paused"
    after = queue.post("/run", {"agent": "echo", "message": "fresh", "session_id": sid})
    assert after.json()["result"] == "echo[turns=2]: fresh"  # the session is free again
