"""The tenants' queue (``runs.dispatch``), in process: a tenant over its cap of runs in flight holds
its further queued runs in the database; every way a run of its ends (or pauses) hands its oldest
held run to the broker; every way a run is queued decides the same way; the sweeper releases what
an end missed; other tenants are never held by it.

Runs execute as the worker's task does (``runs.execute.run_execute``), as in ``test_lifecycle``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from agents_app.models import Run
from agents_app.runs import dispatch, transitions
from agents_app.runs.cancel import run_cancel, run_retry
from agents_app.runs.execute import Step
from agents_app.runs.resume import ResumeRequest, run_resume_record
from agents_app.runs.submit import RunRequest, run_record
from agents_app.runs.sweep import run_sweep
from agents_app.schedules.firing import schedules_fire
from agents_app.schedules.services import schedule_create
from agents_app.services import agent_create
from sessions_app.models import Tenant
from tests.agents_app.test_lifecycle import WORKER, run_execute

Queue = Callable[..., Run]


def capped(tenant: Tenant, cap: int | None) -> Tenant:
    Tenant.objects.filter(pk=tenant.pk).update(limit_runs_in_flight=cap)
    tenant.refresh_from_db()
    return tenant


@pytest.fixture
def queue(django_capture_on_commit_callbacks) -> Queue:
    """``queue(client, message)``: a queued run of the client's tenant, on a session of its own,
    recorded and (once committed) published or held, as ``POST /run`` with ``"async": true``."""

    def make(client, message: str = "hi", *, agent: str = "echo", session_id: str | None = None) -> Run:
        request = RunRequest(agent, message, session_id=session_id, mode="queued")
        with django_capture_on_commit_callbacks(execute=True):
            run, created = run_record(request, tenant=client.tenant)
        assert created
        run.refresh_from_db()
        return run

    return make


def held(*runs: Run) -> list[bool]:
    return [Run.objects.get(pk=run.pk).held for run in runs]


def test_a_tenant_at_its_cap_holds_its_further_queued_runs_which_still_show_queued(alice, queue) -> None:
    capped(alice.tenant, 2)
    runs = [queue(alice, f"m{i}") for i in range(5)]
    assert held(*runs) == [False, False, True, True, True]
    assert {run.status for run in runs} == {"queued"}
    assert dispatch.in_flight(tenant_id=alice.tenant.pk, cap=10) == 2
    shown = alice.get(f"/runs/{runs[4].pk}")
    assert shown.status_code == 200 and shown.json()["status"] == "queued"
    assert "held" not in shown.json()  # CONTRACT's run object: nothing new


def test_a_held_run_executes_once_its_turn_came_oldest_first(alice, queue) -> None:
    capped(alice.tenant, 1)
    first, second, third = (queue(alice, m) for m in ("a", "b", "c"))
    assert held(first, second, third) == [False, True, True]
    before = Run.objects.get(pk=second.pk).enqueued_at
    assert run_execute(run_id=str(first.pk), worker=WORKER) is Step.DONE
    assert held(second, third) == [False, True]  # the oldest held run went, the other waits
    assert Run.objects.get(pk=second.pk).enqueued_at > before  # handed to the broker now
    assert run_execute(run_id=str(second.pk), worker=WORKER) is Step.DONE
    assert held(third) == [False]
    assert run_execute(run_id=str(third.pk), worker=WORKER) is Step.DONE
    assert [Run.objects.get(pk=r.pk).status for r in (first, second, third)] == ["succeeded"] * 3


def _claimed(run: Run) -> Run:
    claimed = transitions.claim(run_id=str(run.pk), worker=WORKER)
    assert claimed is not None
    return claimed


def _stale(run: Run) -> Run:
    claimed = _claimed(run)
    Run.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    return Run.objects.get(pk=claimed.pk)


#: Every way a run in flight stops holding its slot: name → what ends (or pauses) it.
END_PATHS: dict[str, Callable[[Run], object]] = {
    "succeeded on a worker": lambda run: run_execute(run_id=str(run.pk), worker=WORKER),
    "finish": lambda run: transitions.finish(_claimed(run), worker=WORKER, status="failed", error="x"),
    "finish, never started": lambda run: transitions.finish(
        _claimed(run), worker=WORKER, status="cancelled", error="x", started=False
    ),
    "cancel_queued": lambda run: transitions.cancel_queued(Run.objects.only("pk", "webhook_url").get(pk=run.pk)),
    "cancel while queued": lambda run: run_cancel(run=run),
    "fail_queued": lambda run: transitions.fail_queued(run, error="broker down"),
    "abandon (the sweeper)": lambda run: transitions.abandon(_stale(run), status="failed", error="lost"),
    "out of attempts (the sweeper)": lambda run: _swept_out_of_attempts(run),
    "pause": lambda run: transitions.pause(_claimed(run), worker=WORKER, pause={"kind": "approval"}),
}


def _swept_out_of_attempts(run: Run) -> None:
    _stale(run)
    Run.objects.filter(pk=run.pk).update(attempts=99)
    assert run_sweep().failed == 1


@pytest.mark.parametrize("path", list(END_PATHS))
def test_every_end_of_a_run_in_flight_releases_the_next_held_run(alice, queue, path: str) -> None:
    capped(alice.tenant, 1)
    first, second = queue(alice, "a"), queue(alice, "b")
    assert held(first, second) == [False, True]
    END_PATHS[path](first)
    assert Run.objects.get(pk=first.pk).status in {"succeeded", "failed", "cancelled", "paused"}
    assert held(second) == [False]
    assert run_execute(run_id=str(second.pk), worker=WORKER) is Step.DONE


def test_a_run_queued_again_keeps_its_slot_and_holds_the_others(alice, queue) -> None:
    """A busy session sends its run back to the queue, and the sweeper queues a lost one again:
    both stay in flight (published again), so the held run still waits."""
    capped(alice.tenant, 1)
    first, second = queue(alice, "a"), queue(alice, "b")
    assert transitions.requeue(_claimed(first), worker=WORKER, uncount=True)
    assert transitions.lose(_stale(first))
    assert held(first, second) == [False, True]
    assert dispatch.in_flight(tenant_id=alice.tenant.pk, cap=5) == 1


def test_a_cancelled_held_run_never_executes_and_frees_no_slot(alice, queue) -> None:
    capped(alice.tenant, 1)
    first, second, third = queue(alice, "a"), queue(alice, "b"), queue(alice, "c")
    cancelled = run_cancel(run=Run.objects.get(pk=second.pk))
    assert (cancelled.status, cancelled.started_at) == ("cancelled", None)
    assert held(third) == [True]  # the tenant's one run in flight is still ``first``
    assert run_execute(run_id=str(first.pk), worker=WORKER) is Step.DONE
    assert held(third) == [False]  # the next one after the cancelled run
    assert run_execute(run_id=str(second.pk), worker=WORKER) is Step.SKIPPED  # a stray message
    assert Run.objects.get(pk=second.pk).status == "cancelled"


def test_tenants_are_capped_each_on_its_own(alice, make_tenant, queue) -> None:
    bob = make_tenant()
    capped(alice.tenant, 1)
    capped(bob.tenant, 1)
    a1, a2 = queue(alice, "a1"), queue(alice, "a2")
    b1, b2 = queue(bob, "b1"), queue(bob, "b2")
    assert held(a1, a2, b1, b2) == [False, True, False, True]  # alice's backlog does not hold bob's run
    assert run_execute(run_id=str(b1.pk), worker=WORKER) is Step.DONE
    assert held(a2, b2) == [True, False]  # bob's end releases bob's run only
    assert bob.get(f"/runs/{a2.pk}").status_code == 404  # another tenant's held run
    assert bob.post(f"/runs/{a2.pk}/cancel").status_code == 404
    assert held(a2) == [True] and Run.objects.get(pk=a2.pk).status == "queued"


def test_sync_runs_take_no_slot(alice, queue) -> None:
    capped(alice.tenant, 1)
    sync, _ = run_record(RunRequest("echo", "now", session_id="s-sync"), tenant=alice.tenant)
    assert (sync.status, sync.is_async) == ("running", False)
    assert held(queue(alice, "q")) == [False]


def test_no_cap_holds_nothing_and_removing_a_cap_releases_what_waited(alice, queue) -> None:
    capped(alice.tenant, 0)
    assert held(*(queue(alice) for _ in range(3))) == [False] * 3
    capped(alice.tenant, 1)
    waiting = queue(alice)
    assert held(waiting) == [True]
    capped(alice.tenant, 0)
    assert dispatch.runs_release(tenant_id=alice.tenant.pk) == 1
    assert held(waiting) == [False]


def test_the_deployment_default_applies_without_a_cap_of_the_tenant(alice, queue) -> None:
    capped(alice.tenant, None)
    with override_settings(AK_LIMITS={**_ak_limits(), "RUNS_IN_FLIGHT": 1}):
        assert held(queue(alice), queue(alice)) == [False, True]


def _ak_limits() -> dict:
    return settings.AK_LIMITS


def test_the_sweeper_releases_what_an_end_missed_and_never_republishes_a_held_run(alice, queue) -> None:
    capped(alice.tenant, 1)
    first, second = queue(alice, "a"), queue(alice, "b")
    old = timezone.now() - timedelta(hours=1)
    Run.objects.filter(pk=second.pk).update(enqueued_at=old)  # held long ago
    report = run_sweep()
    assert (report.republished, report.released) == (0, 0)  # held, not "forgotten"; the tenant is at its cap
    assert held(second) == [True] and Run.objects.get(pk=second.pk).enqueued_at == old
    # Its process died between the end and its release: the end is written, nothing released.
    Run.objects.filter(pk=first.pk).update(status="succeeded", finished_at=timezone.now())
    assert run_sweep().released == 1
    assert held(second) == [False]
    assert run_execute(run_id=str(second.pk), worker=WORKER) is Step.DONE


def test_a_run_held_as_the_last_slot_freed_is_released_after_its_own_commit(alice, queue) -> None:
    """The race of an end and a new run: the run is recorded held while the tenant's last slot is
    taken, the slot frees before the run's commit (its end's release found nothing held yet): the
    new run's own look after its commit releases it."""
    capped(alice.tenant, 1)
    first = queue(alice, "a")
    assert dispatch.held_for(alice.tenant) is True
    Run.objects.filter(pk=first.pk).update(status="succeeded")  # ended meanwhile, nothing held then
    late = Run.objects.create(
        tenant=alice.tenant,
        session=first.session,
        agent=first.agent,
        message="b",
        is_async=True,
        held=True,
        enqueued_at=timezone.now(),
    )
    dispatch.queued_on_commit(late, lambda: pytest.fail("a held run is not published directly"))
    assert held(late) == [False]


def test_a_queued_resume_a_retry_and_a_scheduled_firing_wait_their_turn(alice, queue) -> None:
    agent_create(tenant=alice.tenant, name="approver", framework="echo", config={"approval": True})
    paused = queue(alice, "p", agent="approver", session_id="s-p")
    finished = queue(alice, "f", session_id="s-f")
    assert run_execute(run_id=str(paused.pk), worker=WORKER) is Step.DONE
    assert run_execute(run_id=str(finished.pk), worker=WORKER) is Step.DONE
    assert Run.objects.get(pk=paused.pk).status == "paused"
    capped(alice.tenant, 1)
    blocker = queue(alice, "b")
    assert held(blocker) == [False]

    request = ResumeRequest(str(paused.pk), decisions=[{"id": "echo", "approve": True}], mode="queued")
    resumed = run_resume_record(request, tenant=alice.tenant)
    assert (resumed.status, resumed.held) == ("queued", True)
    retry = run_retry(run=Run.objects.get(pk=finished.pk))
    assert held(retry) == [True]
    schedule = schedule_create(tenant=alice.tenant, agent="echo", message="tick", cron="* * * * *")
    assert schedules_fire(now=schedule.next_run_at) == 1
    fired = Run.objects.get(schedule=schedule)
    assert held(fired) == [True]

    # Each end releases the next, oldest queued first: the resume (queued before the others), ...
    for expected in (resumed, retry, fired):
        running = Run.objects.filter(tenant=alice.tenant, held=False, status="queued").get()
        assert run_execute(run_id=str(running.pk), worker=WORKER) is Step.DONE
        assert held(expected) == [False]
    assert run_execute(run_id=str(fired.pk), worker=WORKER) is Step.DONE
    assert Run.objects.get(pk=resumed.pk).status == "succeeded"


@pytest.fixture
def broken_broker() -> Callable[[], contextlib.AbstractContextManager[None]]:
    """``with broken_broker():`` the test settings' broker (kombu's filesystem transport) cannot
    take a message: its queue's folder is a file meanwhile (a failure even root cannot write past).
    The folder is this test process's own (``tests/conftest.py``): no other process's broker breaks."""

    @contextlib.contextmanager
    def broken() -> Iterator[None]:
        folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_out"])
        aside = folder.with_name(folder.name + ".aside")
        folder.rename(aside)
        folder.write_text("not a folder")
        try:
            yield
        finally:
            folder.unlink()
            aside.rename(folder)

    return broken


def test_a_held_run_the_broker_refuses_stays_held_in_its_place(alice, queue, broken_broker) -> None:
    capped(alice.tenant, 1)
    first, second, third = queue(alice, "a"), queue(alice, "b"), queue(alice, "c")
    queued_at = Run.objects.get(pk=second.pk).enqueued_at
    Run.objects.filter(pk=first.pk).update(status="succeeded")  # its slot is free
    with broken_broker():
        assert dispatch.runs_release(tenant_id=alice.tenant.pk) == 0
    assert held(second, third) == [True, True]
    assert Run.objects.get(pk=second.pk).enqueued_at == queued_at  # still first in line
    assert dispatch.runs_release(tenant_id=alice.tenant.pk) == 1  # the broker is back
    assert held(second, third) == [False, True]
