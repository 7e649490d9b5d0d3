"""Limits per tenant through the real server (gunicorn, 2 processes) and, for queued runs, a
Celery worker: 403 for stored objects, 429 with Retry-After for what a tenant holds at once."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta

import pytest
import requests

from tests import services
from tests.live.queue import Queue
from tests.live.servers import Platform
from tests.live.test_streaming import sse

pytestmark = pytest.mark.slow


def other_tenant(platform: Platform) -> dict[str, str]:
    """A second tenant of the platform, made as users make one: its API key's headers."""
    slug = f"other-{uuid.uuid4().hex[:6]}"
    out = subprocess.run(
        [sys.executable, str(services.ROOT / "manage.py"), "create_tenant", slug],
        env=platform.env,
        cwd=services.ROOT,
        check=True,
        capture_output=True,
    )
    return {"Authorization": f"Bearer {out.stdout.decode().strip().splitlines()[-1]}"}


def post(platform: Platform, path: str, body: dict, headers: dict | None = None) -> requests.Response:
    headers = headers or {"Authorization": f"Bearer {platform.key}"}
    return requests.post(f"{platform.url}{path}", json=body, headers=headers, timeout=60)


def limit_reached(response: requests.Response, status: int, limit: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == "limit_reached" and body["limit"] == limit, body
    if status == 429:
        assert int(response.headers["Retry-After"]) > 0
    else:
        assert "Retry-After" not in response.headers


def test_stored_objects_over_their_limits_are_a_403_naming_the_limit(start_platform, redis_url: str) -> None:
    # Redis, the store both web processes share: with an in-memory store each, a session's second
    # run could reach the process that never saw its history (409 session_expired).
    limits = {"AK_LIMITS__AGENTS": "2", "AK_LIMITS__SECRETS": "2", "AK_LIMITS__SESSIONS": "3"}
    platform = start_platform({**limits, "AK_SESSION__TYPE": "redis", "AK_SESSION__REDIS__URL": redis_url})

    for name in ("a1", "a2"):  # the built-in echo does not count
        assert post(platform, "/agents", {"name": name, "framework": "echo", "config": {}}).status_code == 201
    limit_reached(post(platform, "/agents", {"name": "a3", "framework": "echo", "config": {}}), 403, "agents")

    for name in ("s1", "s2"):
        assert post(platform, "/secrets", {"name": name, "value": "v"}).status_code == 201
    assert post(platform, "/secrets", {"name": "s1", "value": "rotated"}).status_code == 201  # not a new one
    limit_reached(post(platform, "/secrets", {"name": "s3", "value": "v"}), 403, "secrets")

    for session_id in ("c1", "c2", "c3", "c1"):
        answer = post(platform, "/run", {"agent": "echo", "message": "hi", "session_id": session_id})
        assert answer.status_code == 200, answer.text
    limit_reached(post(platform, "/run", {"agent": "echo", "message": "hi", "session_id": "c4"}), 403, "sessions")
    limit_reached(post(platform, "/run", {"agent": "echo", "message": "hi"}), 403, "sessions")  # a new one too
    queued = {"agent": "echo", "message": "hi", "session_id": "c5", "async": True}
    limit_reached(post(platform, "/run", queued), 403, "sessions")  # nothing queued
    chat = {"agent": "echo", "prompt": "hi", "session_id": "c6"}
    limit_reached(post(platform, "/api/v1/chat", chat), 403, "sessions")
    assert post(platform, "/run", {"agent": "echo", "message": "again", "session_id": "c2"}).status_code == 200

    other = other_tenant(platform)  # another tenant counts its own
    assert post(platform, "/agents", {"name": "a3", "framework": "echo", "config": {}}, other).status_code == 201
    assert post(platform, "/run", {"agent": "echo", "message": "hi", "session_id": "c4"}, other).status_code == 200


def test_a_tenant_at_its_limit_of_concurrent_runs_gets_429_and_others_do_not(start_platform) -> None:
    platform = start_platform({"AK_LIMITS__CONCURRENT_RUNS": "1"})
    assert post(platform, "/agents", {"name": "slow", "framework": "echo", "config": {"delay_s": 3}}).status_code == 201
    # Streamed, its first event says it is running.
    streamed = requests.post(
        f"{platform.url}/run",
        json={"agent": "slow", "message": "first", "stream": True},
        headers={"Authorization": f"Bearer {platform.key}"},
        stream=True,
        timeout=60,
    )
    events = sse(streamed)
    assert next(events)[1] == "run"

    for _ in range(3):  # whichever web process answers: the count is the database's
        limit_reached(post(platform, "/run", {"agent": "echo", "message": "second"}), 429, "concurrent_runs")
    other = other_tenant(platform)
    assert post(platform, "/run", {"agent": "echo", "message": "unaffected"}, other).status_code == 200

    assert [kind for _, kind, _ in events][-1] == "done"  # the first run ends: its place is free
    assert post(platform, "/run", {"agent": "echo", "message": "now"}).status_code == 200


def test_queued_runs_over_the_limit_wait_their_turn(start_queue) -> None:
    """Accepted into the queue (202), they are never more than the limit running at once: a
    worker that claims one over the limit puts it back, and it runs later."""
    queue: Queue = start_queue("redis", workers=1, env={"AK_LIMITS__CONCURRENT_RUNS": "1"})
    agent = queue.agent("slowish", delay_s=1)
    queued = [queue.enqueue(agent, f"m{i}", f"q-{i}") for i in range(3)]
    runs = [queue.finished(q["run_id"]) for q in queued]
    assert [run["status"] for run in runs] == ["succeeded"] * 3
    spans = sorted(
        (datetime.fromisoformat(run["started_at"]), datetime.fromisoformat(run["finished_at"])) for run in runs
    )
    # One after the other, never two at once. The database orders them: a claim's ``started_at``
    # is taken before its UPDATE, which may wait (SQLite's one writer) for the last run's end to
    # commit, so it may read a few milliseconds before that end's ``finished_at``; two runs of 1 s
    # at once would overlap by most of a second.
    for (_, finished), (started, _) in itertools.pairwise(spans):
        assert finished - started < timedelta(milliseconds=250), (finished, started)


def test_open_event_streams_over_the_limit_get_429_until_one_ends(start_queue) -> None:
    """Counted in the shared cache (Redis) across the web processes; a slot comes back when its
    stream ends, and when its client goes away."""
    queue: Queue = start_queue("redis", workers=0, env={"AK_LIMITS__EVENT_STREAMS": "1"})
    platform = queue.platform
    waiting = [queue.enqueue("echo", f"never run {i}", f"w-{i}")["run_id"] for i in range(2)]

    def open_stream(run_id: str) -> requests.Response:
        return requests.get(f"{platform.url}/runs/{run_id}/events", headers=queue.headers, stream=True, timeout=60)

    first = open_stream(waiting[0])
    assert first.status_code == 200
    for _ in range(3):  # new connections: either web process
        limit_reached(open_stream(waiting[1]), 429, "event_streams")
    streamed = post(platform, "/run", {"agent": "echo", "message": "hi", "stream": True})
    limit_reached(streamed, 429, "event_streams")  # a streamed run is an open stream too
    other = other_tenant(platform)
    run_id = post(platform, "/run", {"agent": "echo", "message": "hi"}, other).json()["run_id"]
    theirs = requests.get(f"{platform.url}/runs/{run_id}/events", headers=other, timeout=60)
    assert theirs.status_code == 200 and "event: done" in theirs.text

    # The followed run is cancelled: its stream ends with that event, and gives its slot back.
    ended: list = []
    reader = threading.Thread(target=lambda: ended.extend(sse(first)))
    reader.start()
    assert post(platform, f"/runs/{waiting[0]}/cancel", {}).status_code in (200, 202)
    reader.join(timeout=60)
    assert [kind for _, kind, _ in ended] == ["cancelled"]
    second = until_open(lambda: open_stream(waiting[1]))

    # Its client goes away: the slot comes back too.
    second.close()
    third = until_open(lambda: open_stream(waiting[1]))
    third.close()


def until_open(open_stream) -> requests.Response:
    """The stream, once a slot is free (released as the server sees the last one end)."""
    deadline = time.monotonic() + 30
    while True:
        response = open_stream()
        if response.status_code == 200:
            return response
        limit_reached(response, 429, "event_streams")
        assert time.monotonic() < deadline, "the slot never came back"
        time.sleep(0.2)
