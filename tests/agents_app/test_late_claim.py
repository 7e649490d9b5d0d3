"""A first attempt executed before it is claimed (``AK_RUN__CLAIM_AFTER``).

A short run goes from ``queued`` to its end in one write; a longer one is claimed (shown
``running``) once it has run ``CLAIM_AFTER`` seconds; a cancel still wins against its commit,
because the store revokes the run; and a run some delivery already committed is replayed, not run
again. In process, over the in-memory store (which can revoke), as ``test_lifecycle`` does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents_app.lifecycle import Step, close_thread_loop, run_cancel, run_execute
from agents_app.models import Run
from agents_app.services import agent_create, run_enqueue
from sessions_app.selectors import session_key
from sessions_app.stores import get_store
from sessions_app.stores.base import Message, SessionBusy

WORKER = "w-test@host"
# Workers on threads see only what is committed.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def queued(alice, django_capture_on_commit_callbacks) -> Callable[..., Run]:
    def make(message: str = "hi", *, session_id: str = "s-1", agent: str = "echo") -> Run:
        with django_capture_on_commit_callbacks(execute=True):
            run, _ = run_enqueue(tenant=alice.tenant, agent_name=agent, message=message, session_id=session_id)
        return run

    return make


@pytest.fixture
def slow(alice) -> str:
    """An agent that takes 0.6 s."""
    agent_create(tenant=alice.tenant, name="slow", framework="echo", config={"delay_s": 0.6})
    return "slow"


def claim_after(settings, seconds: float, *, heartbeat: float | None = None) -> None:
    settings.AK_RUN = {
        **settings.AK_RUN,
        "CLAIM_AFTER": seconds,
        "HEARTBEAT": heartbeat or settings.AK_RUN["HEARTBEAT"],
    }


def in_thread(run: Run, **options: object) -> Callable[[], Step]:
    """Start ``run_execute`` on another thread (a worker); return a join that gives its step."""
    steps: list[Step] = []

    def work() -> None:
        try:
            steps.append(run_execute(run_id=str(run.pk), worker=WORKER, **options))
        finally:
            close_thread_loop()
            connection.close()

    thread = threading.Thread(target=work)
    thread.start()

    def join() -> Step:
        thread.join(10)
        return steps[0]

    return join


def wait_for(predicate: Callable[[], bool], seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def executing(run: Run) -> bool:
    """Whether a worker holds the run's session (it is in its adapter)."""
    try:
        get_store().acquire(session_key(run.session), lease=1, wait=0).release()
    except SessionBusy:
        return True
    return False


def history(run: Run) -> list[str]:
    return [m.content for m in get_store().history(session_key(run.session))]


def run_writes(work: Callable[[], object]) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        work()
    # On PostgreSQL the finish is a WITH (the session's index row) ... UPDATE of the run.
    return [q["sql"] for q in queries if 'UPDATE "agents_app_run"' in q["sql"]]


def test_a_short_run_goes_from_queued_to_succeeded_in_one_write(queued, settings) -> None:
    run = queued("quick")
    writes = run_writes(lambda: run_execute(run_id=str(run.pk), worker=WORKER))
    run.refresh_from_db()
    assert len(writes) == 1  # the finish is its claim too
    assert (run.status, run.result, run.worker, run.attempts) == ("succeeded", "echo[turns=1]: quick", WORKER, 1)
    assert run.created_at <= run.started_at <= run.finished_at

    claim_after(settings, 0)  # claimed first: a claim, then a finish
    other = queued("claimed", session_id="s-2")
    assert len(run_writes(lambda: run_execute(run_id=str(other.pk), worker=WORKER))) == 2
    assert Run.objects.get(pk=other.pk).status == "succeeded"


def test_a_longer_run_is_claimed_and_shown_running(queued, slow, settings) -> None:
    claim_after(settings, 0.1)
    run = queued("long", agent=slow)
    join = in_thread(run)
    wait_for(lambda: Run.objects.get(pk=run.pk).status == "running")
    running = Run.objects.get(pk=run.pk)
    assert (running.worker, running.attempts, running.heartbeat_at is not None) == (WORKER, 1, True)
    assert join() is Step.DONE
    run.refresh_from_db()
    assert (run.status, run.attempts, run.started_at) == ("succeeded", 1, running.started_at)
    assert history(run) == ["long", "echo[turns=1]: long"]


def test_a_cancel_wins_against_an_unclaimed_run(queued, slow, settings) -> None:
    claim_after(settings, 30)  # never claimed while it runs: only the store can stop its commit
    run = queued("doomed", agent=slow)
    join = in_thread(run)
    wait_for(lambda: executing(run))
    assert Run.objects.get(pk=run.pk).status == "queued"

    cancelled = run_cancel(run=Run.objects.get(pk=run.pk))

    assert (cancelled.status, cancelled.error) == ("cancelled", "cancelled before it started")
    assert join() is Step.DONE  # the adapter ended; its commit was refused
    run.refresh_from_db()
    assert (run.status, run.result) == ("cancelled", None)
    assert history(run) == []


def test_a_cancel_after_the_commit_is_too_late(queued) -> None:
    run = queued("won")
    key = session_key(run.session)
    # A delivery executed it unclaimed and committed, and has not recorded it yet.
    exchange = [Message("user", "won", "echo"), Message("assistant", "echo[turns=1]: won", "echo")]
    get_store().commit(key, expected_version=0, append=exchange, run_id=str(run.pk))

    assert run_cancel(run=run).status == "queued"  # not cancelled: it committed

    assert run_execute(run_id=str(run.pk), worker=WORKER) is Step.DONE  # replayed, not run again
    run.refresh_from_db()
    assert (run.status, run.result) == ("succeeded", "echo[turns=1]: won")
    assert history(run) == ["won", "echo[turns=1]: won"]


def test_a_redelivered_task_is_claimed_first(queued, slow, settings) -> None:
    run = queued("again", agent=slow)
    join = in_thread(run, redelivered=True)
    wait_for(lambda: Run.objects.get(pk=run.pk).status == "running", 0.4)  # at once, not after CLAIM_AFTER
    assert join() is Step.DONE
    run.refresh_from_db()
    assert (run.status, run.attempts) == ("succeeded", 1)


def test_a_cancel_reaches_a_claimed_run_before_its_next_beat(queued, slow, settings) -> None:
    claim_after(settings, 0.05, heartbeat=60)  # claimed at once; its next beat is a minute away
    run = queued("stopped", agent=slow)
    join = in_thread(run)
    wait_for(lambda: Run.objects.get(pk=run.pk).status == "running")

    assert run_cancel(run=Run.objects.get(pk=run.pk)).status == "running"  # its worker records the end

    assert join() is Step.DONE
    run.refresh_from_db()
    assert (run.status, run.error, run.result) == ("cancelled", "cancelled while running", None)
    assert history(run) == []
