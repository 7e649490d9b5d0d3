"""The console's run actions go through the run lifecycle: cancel and retry."""

from __future__ import annotations

from agents_app.models import Run
from agents_app.runs.submit import RunRequest, run_record

RUNS = "/admin/agents_app/run/"


def test_cancel_stops_queued_runs_and_leaves_finished_ones(staff_a, tenant_a, converse) -> None:
    session = converse(tenant_a, turns=1)
    done = Run.objects.get(session=session)
    queued, _ = run_record(RunRequest("echo", "later", session_id=session.session_id, mode="queued"), tenant=tenant_a)
    page = staff_a.post(RUNS, {"action": "cancel", "_selected_action": [done.pk, queued.pk]}, follow=True)
    assert page.status_code == 200
    assert Run.objects.get(pk=queued.pk).status == "cancelled"
    assert Run.objects.get(pk=done.pk).status == "succeeded"


def test_retry_queues_a_new_run_of_a_finished_one(staff_a, tenant_a, converse, django_capture_on_commit_callbacks):
    session = converse(tenant_a, turns=1)
    done = Run.objects.get(session=session)
    with django_capture_on_commit_callbacks(execute=True):
        page = staff_a.post(RUNS, {"action": "retry", "_selected_action": [done.pk]}, follow=True)
    assert page.status_code == 200
    retry = Run.objects.exclude(pk=done.pk).get(session=session)
    assert (retry.status, retry.is_async, retry.message, retry.agent_id) == (
        "queued",
        True,
        done.message,
        done.agent_id,
    )
    assert retry.enqueued_at is not None
    assert "Queued 1 new run(s)" in page.content.decode()


def test_actions_never_reach_another_tenants_runs(staff_a, tenant_b, converse) -> None:
    other = Run.objects.get(session=converse(tenant_b, turns=1))
    staff_a.post(RUNS, {"action": "retry", "_selected_action": [other.pk]}, follow=True)
    assert Run.objects.filter(tenant=tenant_b).count() == 1


def test_cancel_while_the_store_is_down_still_cancels_a_queued_run(
    staff_a, tenant_a, converse, make_store, use_store
) -> None:
    """No worker holds a queued run, so the database alone cancels it; the store is not needed."""
    from tests.services import free_port

    session = converse(tenant_a, turns=1)
    queued, _ = run_record(RunRequest("echo", "later", session_id=session.session_id, mode="queued"), tenant=tenant_a)
    use_store(make_store("redis", url=f"redis://127.0.0.1:{free_port()}/0"))  # down

    page = staff_a.post(RUNS, {"action": "cancel", "_selected_action": [queued.pk]}, follow=True)

    assert page.status_code == 200
    run = Run.objects.get(pk=queued.pk)
    assert run.status == "cancelled" and run.cancel_requested_at is not None
