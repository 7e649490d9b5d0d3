"""The life of a run that waits for a person, in process: queued runs that pause on a worker, their
webhook, a worker lost after the pause's commit, expiry, stale markers, races with other runs.

Runs execute as the worker's task does (``runs.execute.run_execute``), as in ``test_lifecycle``.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from agents_app.models import Run
from agents_app.pauses import PAUSE_SCOPE, pause_marker
from agents_app.runs import transitions
from agents_app.runs.execute import Step
from agents_app.runs.resume import ResumeRequest, run_resume_record
from agents_app.runs.submit import RunRequest, run_record
from agents_app.runs.sweep import run_sweep
from agents_app.services import agent_create
from sessions_app.selectors import session_key
from sessions_app.stores import get_store
from tests.agents_app.test_lifecycle import WORKER, history, run_execute

APPROVE = [{"id": "echo", "approve": True}]


@pytest.fixture
def queued(alice, django_capture_on_commit_callbacks):
    agent_create(tenant=alice.tenant, name="approver", framework="echo", config={"approval": True})

    def make(message: str = "hi", *, agent: str = "approver", webhook: str = "") -> Run:
        request = RunRequest(agent, message, session_id="s-1", mode="queued", webhook_url=webhook)
        with django_capture_on_commit_callbacks(execute=True):
            run, _ = run_record(request, tenant=alice.tenant)
        run.refresh_from_db()
        return run

    return make


def resume(alice, run: Run, *, mode: str = "queued", decisions=APPROVE, capture=None) -> Run:
    request = ResumeRequest(str(run.pk), decisions=decisions, mode=mode)
    if capture is None:
        return run_resume_record(request, tenant=alice.tenant)
    with capture(execute=True):
        return run_resume_record(request, tenant=alice.tenant)


def marker(run: Run) -> dict | None:
    return pause_marker(get_store().load(session_key(run.session), scopes=(PAUSE_SCOPE,), window=0))


def test_a_queued_run_pauses_on_a_worker_then_its_queued_resume_runs_once(
    queued, alice, django_capture_on_commit_callbacks
) -> None:
    run = queued("hi")
    assert run_execute(run_id=str(run.pk), worker=WORKER) is Step.DONE
    run.refresh_from_db()
    assert (run.status, run.worker, run.heartbeat_at, run.result) == ("paused", "", None, None)
    assert run.pause["requests"][0]["arguments"] == {"message": "hi"}
    assert history(run) == ["hi"]
    assert run_execute(run_id=str(run.pk), worker="w2@host") is Step.SKIPPED  # a duplicate delivery
    resumed = resume(alice, run, capture=django_capture_on_commit_callbacks)
    assert (resumed.status, resumed.enqueued_at is not None) == ("queued", True)
    assert run_execute(run_id=str(run.pk), worker="w2@host") is Step.DONE
    run.refresh_from_db()
    assert (run.status, run.result, run.attempts, run.resumes) == ("succeeded", "echo[turns=1]: hi", 2, 1)
    assert history(run) == ["hi", "echo[turns=1]: hi"]
    assert run_execute(run_id=str(run.pk), worker="w3@host") is Step.SKIPPED


def test_the_webhook_fires_on_the_pause_and_again_at_the_end(queued, alice) -> None:
    run = queued("hi", webhook="https://example.com/hook")
    run_execute(run_id=str(run.pk), worker=WORKER)  # published from the I/O thread's commit
    run.refresh_from_db()
    assert (run.status, run.webhook_status, run.webhook_attempts) == ("paused", "pending", 0)
    Run.objects.filter(pk=run.pk).update(webhook_status="delivered", webhook_attempts=1)
    resume(alice, run, mode="sync")
    assert asyncio.run(_execute_held(run)) is Step.DONE
    run.refresh_from_db()
    assert (run.status, run.webhook_status, run.webhook_attempts) == ("succeeded", "pending", 0)


async def _execute_held(run: Run) -> Step:
    from agents_app.runs.execute import execute_claimed
    from infra.io_threads import db

    held = await db(lambda: Run.objects.select_related("agent", "session__tenant").get(pk=run.pk))
    return await execute_claimed(held, worker=held.worker, wait=0)


def test_a_worker_lost_after_the_pause_committed_is_replayed_as_paused(queued) -> None:
    run = queued("once")
    run_execute(run_id=str(run.pk), worker=WORKER)
    stale = timezone.now() - timedelta(minutes=5)
    Run.objects.filter(pk=run.pk).update(status="running", worker=WORKER, heartbeat_at=stale, pause=None)
    assert run_sweep().requeued == 1
    assert run_execute(run_id=str(run.pk), worker="w2@host") is Step.DONE
    run.refresh_from_db()
    assert (run.status, run.pause["kind"]) == ("paused", "approval")
    assert history(run) == ["once"]  # committed once


def test_a_paused_run_is_not_swept_as_lost_and_expires_after_its_ttl(queued, alice) -> None:
    run = queued("hi")
    run_execute(run_id=str(run.pk), worker=WORKER)
    assert run_sweep().requeued == 0
    assert Run.objects.get(pk=run.pk).status == "paused"
    Run.objects.filter(pk=run.pk).update(paused_at=timezone.now() - timedelta(seconds=100))
    with override_settings(AK_RUN={**_run_settings(), "PAUSE_TTL": 200.0}):
        assert run_sweep().expired == 0
    with override_settings(AK_RUN={**_run_settings(), "PAUSE_TTL": 50.0}):
        assert run_sweep().expired == 1
    run.refresh_from_db()
    assert (run.status, run.error) == ("cancelled", "expired: not resumed within 50 s")
    assert marker(run) is None
    with pytest.raises(Exception, match="not paused"):
        resume(alice, run)


def _run_settings() -> dict:
    from django.conf import settings

    return dict(settings.AK_RUN)


def test_a_run_queued_before_another_paused_fails_with_run_paused(queued) -> None:
    first, second = queued("first"), queued("second", agent="echo")
    run_execute(run_id=str(first.pk), worker=WORKER)
    assert run_execute(run_id=str(second.pk), worker=WORKER) is Step.DONE
    second.refresh_from_db()
    assert second.status == "failed" and second.error.startswith("run_paused: ")
    assert str(first.pk) in second.error
    assert history(first) == ["first"]


def test_a_marker_left_by_a_cancel_whose_store_write_failed_is_found_stale(queued, alice) -> None:
    run = queued("hi")
    run_execute(run_id=str(run.pk), worker=WORKER)
    Run.objects.filter(pk=run.pk).update(status="cancelled")  # the marker stays in the store
    assert marker(run) is not None
    later = queued("later", agent="echo")
    assert run_execute(run_id=str(later.pk), worker=WORKER) is Step.DONE
    later.refresh_from_db()
    assert (later.status, later.result) == ("succeeded", "echo[turns=2]: later")
    assert marker(run) is None


def test_two_resumes_never_both_win(queued, alice) -> None:
    run = queued("hi")
    run_execute(run_id=str(run.pk), worker=WORKER)
    run.refresh_from_db()
    answer = {"decisions": {"echo": {"approve": True, "message": None}}}
    assert transitions.resume(run, answer=answer, worker=None)
    assert not transitions.resume(run, answer=answer, worker="web@x:1")
    assert not transitions.cancel_paused(run, error="late")
    assert Run.objects.get(pk=run.pk).resumes == 1


def test_a_cancel_asked_while_the_run_ran_ends_it_cancelled_not_paused(queued) -> None:
    run = queued("hi")
    claimed = transitions.claim(run_id=str(run.pk), worker=WORKER)
    Run.objects.filter(pk=run.pk).update(cancel_requested_at=timezone.now())
    assert not transitions.pause(claimed, worker=WORKER, pause={"kind": "input", "prompt": "?"})
    assert Run.objects.get(pk=run.pk).status == "running"


def test_a_sync_resume_turned_away_by_a_busy_session_waits_paused_again(queued, alice) -> None:
    run = queued("hi")
    run_execute(run_id=str(run.pk), worker=WORKER)
    resume(alice, run, mode="sync")
    with get_store().lock(session_key(run.session), lease=30, wait=0), pytest.raises(Exception, match="busy"):
        asyncio.run(_execute_held(run))
    run.refresh_from_db()
    assert (run.status, run.answer, run.resumes) == ("paused", None, 0)
    assert Run.objects.filter(pk=run.pk).exists()
