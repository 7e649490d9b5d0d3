"""Schedules fired by real processes: celery beat (two of them at once), Celery workers (one
restarted), the broker and the database as deployed, over HTTP.

Cron's granularity is the minute, too slow for a test: the cron arithmetic is tested with a
controlled clock (``tests/agents_app/test_schedule_firing.py``), and here a cron schedule's due
time is set in the database a few seconds ahead (as if that minute were near), which is what the
beat's check reads; what comes after it (the claim, the run, the next due time) is the cron's own.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from tests import services
from tests.live.queue import Queue
from tests.live.servers import manage

pytestmark = pytest.mark.slow

#: A firing's run is made this soon after its due time. The check for due schedules is sent every
#: second; on a machine three times slower than usual a firing was seen 3.7 s late. What the tests
#: rule out (a firing missed, or left to its cron's next time, a year away) is far beyond it.
ON_TIME = timedelta(seconds=8)


def _second_beat(queue: Queue) -> Path:
    """One more celery beat over the same broker (each sends the check for due schedules): its log."""
    name = f"beat-{uuid.uuid4().hex[:6]}"
    log = queue.tmp / f"{name}.log"
    beat = services.celery_beat(env=queue.platform.env, log=log, schedule=queue.tmp / name)
    queue.extra.append(beat.start())  # stopped with the stack, which is not lent again
    return log


def _runs(queue: Queue, schedule_id: str) -> list[dict]:
    response = queue.get(f"/schedules/{schedule_id}/runs")
    assert response.status_code == 200, response.text
    return response.json()


def _wait_runs(queue: Queue, schedule_id: str, count: int, timeout: float = 30) -> list[dict]:
    """The schedule's runs once ``count`` of them ended (newest first)."""
    deadline = time.monotonic() + timeout
    while True:
        runs = _runs(queue, schedule_id)
        if len(runs) >= count and all(r["status"] in ("succeeded", "failed", "cancelled") for r in runs):
            return runs
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(runs)} runs of {schedule_id} after {timeout} s: {runs}")
        time.sleep(0.1)


def _due_in(queue: Queue, schedule_id: str, seconds: float) -> datetime:
    """Move the schedule's next due time to ``seconds`` from now, in the database."""
    due = datetime.now(UTC) + timedelta(seconds=seconds)
    code = (
        "from agents_app.models import Schedule;"
        f" print(Schedule.objects.filter(pk={schedule_id!r}).update(next_run_at={due.isoformat()!r}))"
    )
    assert manage(queue.platform.env, "shell", "-c", code).strip().splitlines()[-1] == "1"
    return due


def _made_by(queue: Queue, message: str) -> int:
    """How many runs of ``message`` the database holds (also those of a deleted schedule)."""
    code = f"from agents_app.models import Run; print(Run.objects.filter(message={message!r}).count())"
    return int(manage(queue.platform.env, "shell", "-c", code).strip().splitlines()[-1])


def _created(run: dict) -> datetime:
    return datetime.fromisoformat(run["created_at"])


def test_an_at_schedule_fires_once_with_two_beats_running(start_queue) -> None:
    queue: Queue = start_queue("redis", workers=2)
    second_beat = _second_beat(queue)
    agent = queue.agent(f"at-{uuid.uuid4().hex[:6]}")
    message = f"at {uuid.uuid4().hex[:8]}"
    at = datetime.now(UTC) + timedelta(seconds=3)
    made = queue.post("/schedules", {"agent": agent, "message": message, "at": at.isoformat()})
    assert made.status_code == 201, made.text
    schedule_id = made.json()["schedule_id"]

    [run] = _wait_runs(queue, schedule_id, 1)
    assert run["status"] == "succeeded" and run["result"] == f"echo[turns=1]: {message}"
    assert timedelta(0) <= _created(run) - at < ON_TIME
    time.sleep(3)  # both beats go on sending their checks
    assert len(_runs(queue, schedule_id)) == 1
    assert queue.invoked()[message] == 1
    assert queue.get(f"/schedules/{schedule_id}").json()["next_run_at"] is None
    for beat in (queue.tmp / "beat.log", second_beat):  # both sent the checks meanwhile
        assert "Sending due task fire-schedules" in beat.read_text(errors="replace")


def test_a_cron_schedule_fires_on_time_across_a_worker_restart_until_deleted(start_queue) -> None:
    queue: Queue = start_queue("redis", workers=1, fresh=True)
    agent = queue.agent(f"cron-{uuid.uuid4().hex[:6]}")
    message = f"cron {uuid.uuid4().hex[:8]}"
    # Once a year by its cron: every due time of the test is one it sets (_due_in), so none comes
    # by itself while a slow machine's `manage.py shell` is starting to set the next.
    cron = "0 0 1 1 *"
    body = {"agent": agent, "message": message, "cron": cron, "session_id": f"s-{uuid.uuid4().hex[:6]}"}
    schedule_id = queue.post("/schedules", body).json()["schedule_id"]

    due = _due_in(queue, schedule_id, 3)
    [first] = _wait_runs(queue, schedule_id, 1)
    assert timedelta(0) <= _created(first) - due < ON_TIME
    after_first = datetime.fromisoformat(queue.get(f"/schedules/{schedule_id}").json()["next_run_at"])
    assert after_first == datetime(due.year + 1, 1, 1, tzinfo=UTC)  # the cron's next time after the firing

    # The worker is killed and another one starts: the due time that came meanwhile fires once.
    [old] = queue.workers.values()
    old.kill()
    due = _due_in(queue, schedule_id, 1)
    time.sleep(2)
    queue.add_worker()
    second = _wait_runs(queue, schedule_id, 2)[0]
    assert second["status"] == "succeeded" and _created(second) >= due
    # And the next due time, on time, on the new worker.
    due = _due_in(queue, schedule_id, 3)
    third = _wait_runs(queue, schedule_id, 3)[0]
    assert timedelta(0) <= _created(third) - due < ON_TIME
    assert third["result"] == f"echo[turns=3]: {message}"  # all on the schedule's session
    assert queue.invoked()[message] == 3

    # Deleted before a due time: it does not fire. (The due time is set by a process that starts
    # Django, which can take seconds on a busy machine: far enough ahead that the delete comes first.)
    due = _due_in(queue, schedule_id, 6)
    deleted = requests.delete(f"{queue.platform.url}/schedules/{schedule_id}", headers=queue.headers, timeout=30)
    assert deleted.status_code == 204
    assert datetime.now(UTC) < due, "deleted after its due time: the test's own timing failed"
    time.sleep((due - datetime.now(UTC)).total_seconds() + 3)
    assert _made_by(queue, message) == 3
    assert queue.get(f"/schedules/{schedule_id}").status_code == 404


def test_a_firing_whose_broker_is_down_is_run_once_it_is_back(start_queue) -> None:
    """The firing's transaction commits, the publish fails: the run stays queued, and the sweeper
    (celery beat, ``AK_RUN__SWEEP_INTERVAL``) publishes it again to the broker that answers."""
    queue: Queue = start_queue("redis", workers=1)
    agent = queue.agent(f"nb-{uuid.uuid4().hex[:6]}")
    message = f"no broker {uuid.uuid4().hex[:8]}"
    made = queue.post("/schedules", {"agent": agent, "message": message, "at": "2099-01-01T00:00:00Z"}).json()
    dead_broker = f"redis://127.0.0.1:{services.free_port()}/0"
    code = (
        "import json; from datetime import datetime; from agents_app.schedules.firing import schedule_fire;"
        f" due = datetime.fromisoformat({made['next_run_at']!r});"
        f" run = schedule_fire(schedule_id={made['schedule_id']!r}, due=due, now=due);"
        " print(json.dumps(str(run.pk)))"
    )
    out = manage({**queue.platform.env, "CELERY_BROKER_URL": dead_broker}, "shell", "-c", code)
    run_id = json.loads(out.strip().splitlines()[-1])
    run = queue.finished(run_id, timeout=30)
    assert run["status"] == "succeeded" and run["result"] == f"echo[turns=1]: {message}"
    assert [r["run_id"] for r in _runs(queue, made["schedule_id"])] == [run_id]
