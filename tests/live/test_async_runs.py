"""Async runs through real Celery workers: never lost, never run twice, cancellable, timed.

Each test starts gunicorn (2 processes), Celery workers in their own processes and celery beat
(the sweeper) over a real broker, and talks to them over HTTP only.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.live.queue import NO_RECOVERY, Queue

pytestmark = pytest.mark.slow

SESSIONS = 20
TURNS = 10


def turn_of(reply: str) -> int:
    return int(reply.split("]")[0].split("=")[1])


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_200_runs_over_20_sessions_on_2_workers(start_queue, broker: str) -> None:
    # Not a recovery test: its runs must each take one attempt, so a heartbeat late on a busy
    # machine (SQLite's one writer, 200 runs queued on two cores) must not count as a lost run.
    queue: Queue = start_queue(broker, env=NO_RECOVERY)
    agent = queue.agent("counter")
    tag = uuid.uuid4().hex[:6]
    jobs = [(f"s{tag}-{s}", f"m{tag}-{s}-{t}") for t in range(TURNS) for s in range(SESSIONS)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        queued = list(pool.map(lambda job: queue.enqueue(agent, job[1], job[0]), jobs))
    assert all(q["status"] == "queued" for q in queued)
    runs = [queue.finished(q["run_id"], timeout=180) for q in queued]
    assert [(r["status"], r["error"], r["attempts"]) for r in runs if r["status"] != "succeeded"] == []
    for s in range(SESSIONS):
        session_id = f"s{tag}-{s}"
        turns = sorted(turn_of(r["result"]) for r in runs if r["session_id"] == session_id)
        assert turns == list(range(1, TURNS + 1)), (session_id, turns)
        assert len(queue.messages(session_id)) == 2 * TURNS
    invoked = queue.invoked()
    assert sorted(invoked) == sorted(message for _, message in jobs)
    assert set(invoked.values()) == {1}, {m: n for m, n in invoked.items() if n != 1}  # none ran twice
    workers = queue.worker_of(*(r["run_id"] for r in runs))
    assert {w.split("@")[0] for w in workers.values()} == set(queue.workers)  # both workers took a share
    assert all(r["attempts"] == 1 for r in runs)


def test_a_worker_killed_mid_run_the_run_finishes_once_on_another(start_queue) -> None:
    queue: Queue = start_queue("redis")
    # Room to read its worker from the database: a `manage.py shell` to start, which took more than
    # 8 s on a machine three times slower than usual, with the suite beside it.
    agent = queue.agent("slow", delay_s=15)
    session_id = f"kill-{uuid.uuid4().hex[:6]}"
    run_id = queue.enqueue(agent, "survive", session_id)["run_id"]
    queue.wait(run_id, lambda r: r["status"] == "running", timeout=30)
    doomed = queue.worker_of(run_id)[run_id].split("@")[0]
    assert queue.run(run_id)["status"] == "running"  # inside the adapter's 15 s
    queue.workers[doomed].kill()
    done = queue.finished(run_id, timeout=60)
    assert done["status"] == "succeeded", done
    assert queue.worker_of(run_id)[run_id].split("@")[0] != doomed
    assert "worker" not in done  # the tenant does not see the platform's processes
    assert done["attempts"] == 2
    assert done["result"] == "echo[turns=1]: survive"
    messages = queue.messages(session_id)
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", "survive"),
        ("assistant", "echo[turns=1]: survive"),
    ]
    assert queue.invoked()["survive"] == 2  # the killed attempt started, and never committed


def test_cancel_a_queued_run_it_never_starts(start_queue) -> None:
    queue: Queue = start_queue("redis")
    agent = queue.agent("slow", delay_s=2)
    session_id = f"cq-{uuid.uuid4().hex[:6]}"
    first = queue.enqueue(agent, "first", session_id)["run_id"]
    queue.wait(first, lambda r: r["status"] == "running")
    second = queue.enqueue(agent, "second", session_id)["run_id"]  # waits: the session is busy
    cancelled = queue.post(f"/runs/{second}/cancel", {})
    # queued: 200 cancelled; or 202 running, for the instant a worker tries the session's lock and finds it busy
    answer = (cancelled.status_code, cancelled.json()["status"])
    assert answer in ((200, "cancelled"), (202, "running")), cancelled.text
    assert queue.finished(second, timeout=10)["status"] == "cancelled"
    assert queue.finished(first)["status"] == "succeeded"
    time.sleep(1.0)  # any delayed retry of the cancelled run has come and gone
    after = queue.run(second)
    assert (after["status"], after["started_at"], after["result"]) == ("cancelled", None, None)
    assert [m["content"] for m in queue.messages(session_id)] == ["first", "echo[turns=1]: first"]
    assert "second" not in queue.invoked()
    again = queue.post(f"/runs/{second}/cancel", {})  # a finished run stays as it was
    assert (again.status_code, again.json()["status"]) == (200, "cancelled")


def test_cancel_a_running_run_it_commits_nothing(start_queue) -> None:
    queue: Queue = start_queue("redis")
    agent = queue.agent("slow", delay_s=10)
    session_id = f"cr-{uuid.uuid4().hex[:6]}"
    run_id = queue.enqueue(agent, "stop me", session_id)["run_id"]
    queue.wait(run_id, lambda r: r["status"] == "running")
    started = time.monotonic()
    asked = queue.post(f"/runs/{run_id}/cancel", {})
    assert asked.status_code == 202 and asked.json()["cancel_requested_at"] is not None, asked.text
    done = queue.finished(run_id, timeout=10)
    assert done["status"] == "cancelled" and done["result"] is None
    assert time.monotonic() - started < 5  # stopped at the next check, not after the 10 s
    assert queue.messages(session_id) == []
    assert queue.invoked()["stop me"] == 1
    follow = queue.enqueue("echo", "next", session_id)["run_id"]  # the session's lock was released
    assert queue.finished(follow)["result"] == "echo[turns=1]: next"


def test_idempotency_key_same_body_same_run_other_body_409(start_queue) -> None:
    queue: Queue = start_queue("redis", workers=1)
    agent = queue.agent("counter")
    session_id = f"idem-{uuid.uuid4().hex[:6]}"
    body = {"agent": agent, "message": "once", "session_id": session_id, "async": True}
    key = f"key-{uuid.uuid4().hex}"
    first = queue.post("/run", body, **{"Idempotency-Key": key})
    assert first.status_code == 202, first.text
    run_id = first.json()["run_id"]
    assert queue.finished(run_id)["status"] == "succeeded"
    again = queue.post("/run", body, **{"Idempotency-Key": key})
    assert again.status_code == 202 and again.json()["run_id"] == run_id
    assert again.json()["status"] == "succeeded"
    other = queue.post("/run", {**body, "message": "twice"}, **{"Idempotency-Key": key})
    assert other.status_code == 409 and other.json()["code"] == "idempotency_conflict"
    time.sleep(0.5)
    assert queue.invoked() == {"once": 1}
    assert len(queue.messages(session_id)) == 2
    runs = queue.get(f"/sessions/{session_id}/runs").json()["runs"]
    assert [r["run_id"] for r in runs] == [run_id]


def test_a_run_over_the_time_limit_fails_with_a_timeout(start_queue) -> None:
    queue: Queue = start_queue("redis", workers=1, env={"AK_RUN__TIME_LIMIT": "1"})
    agent = queue.agent("slow", delay_s=5)
    session_id = f"tl-{uuid.uuid4().hex[:6]}"
    run_id = queue.enqueue(agent, "too slow", session_id)["run_id"]
    done = queue.finished(run_id, timeout=20)
    assert done["status"] == "failed"
    assert done["error"].startswith("timeout:"), done["error"]
    assert queue.messages(session_id) == []
    assert queue.invoked()["too slow"] == 1  # a timeout is final: not retried


def test_session_runs_lists_newest_first_with_a_cursor(start_queue) -> None:
    queue: Queue = start_queue("redis", workers=1)
    session_id = f"list-{uuid.uuid4().hex[:6]}"
    ids = [queue.enqueue("echo", f"m{i}", session_id)["run_id"] for i in range(5)]
    for run_id in ids:
        queue.finished(run_id)
    first = queue.get(f"/sessions/{session_id}/runs", limit=3).json()
    second = queue.get(f"/sessions/{session_id}/runs", limit=3, cursor=first["next"]).json()
    assert second["next"] is None
    assert [r["run_id"] for r in first["runs"] + second["runs"]] == ids[::-1]
    assert queue.get("/sessions/nope/runs").status_code == 404
