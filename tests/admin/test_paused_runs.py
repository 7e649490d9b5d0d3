"""The console's paused runs: listed on the home page and in the runs' list, approved or denied by
an operator (the run is resumed, queued for a worker), never another tenant's."""

from __future__ import annotations

import asyncio

import pytest

from agents_app.models import Run
from agents_app.runs import execute
from agents_app.runs.submit import RunRequest, run_submit
from agents_app.services import agent_create

RUNS = "/admin/agents_app/run/"


@pytest.fixture
def paused(transactional_db):
    def make(tenant, message: str = "hi", session_id: str = "s-1") -> Run:
        agent_create(tenant=tenant, name="approver", framework="echo", config={"approval": True})
        submitted = asyncio.run(run_submit(RunRequest("approver", message, session_id=session_id), tenant=tenant))
        assert submitted.run.status == "paused"
        return Run.objects.get(pk=submitted.run.pk)

    return make


def test_the_home_page_lists_the_tenants_paused_runs(staff_a, tenant_a, tenant_b, paused) -> None:
    mine, theirs = paused(tenant_a, "mine"), paused(tenant_b, "theirs")
    page = staff_a.get("/admin/").content.decode()
    assert "Waiting for a person (1)" in page
    assert str(mine.pk) in page and "mine" in page
    assert str(theirs.pk) not in page and "theirs" not in page
    listed = staff_a.get(RUNS, {"status__exact": "paused"}).content.decode()
    assert "echo({&#x27;message&#x27;: &#x27;mine&#x27;})" in listed and "theirs" not in listed


@pytest.mark.parametrize(("action", "reply"), [("approve", "echo[turns=1]: hi"), ("deny", "echo[denied]: hi")])
def test_an_operator_approves_or_denies_and_a_worker_goes_on(
    staff_a, tenant_a, paused, action, reply, django_capture_on_commit_callbacks
) -> None:
    run = paused(tenant_a)
    with django_capture_on_commit_callbacks(execute=True):
        page = staff_a.post(
            RUNS + "?status__exact=paused", {"action": action, "index": 0, "_selected_action": [run.pk]}
        )
    assert page.status_code == 302
    run.refresh_from_db()
    assert (run.status, run.is_async) == ("queued", True)
    assert run.answer["decisions"]["echo"]["approve"] is (action == "approve")
    assert asyncio.run(execute.run_execute(run_id=str(run.pk), worker="w@host")) is execute.Step.DONE
    run.refresh_from_db()
    assert (run.status, run.result) == ("succeeded", reply)


def test_an_operator_cannot_decide_another_tenants_run(staff_a, tenant_b, paused) -> None:
    theirs = paused(tenant_b)
    staff_a.post(RUNS, {"action": "approve", "index": 0, "_selected_action": [theirs.pk]}, follow=True)
    assert Run.objects.get(pk=theirs.pk).status == "paused"


def test_runs_not_paused_are_skipped(staff_a, tenant_a, paused, converse) -> None:
    run = paused(tenant_a)
    done = Run.objects.get(session=converse(tenant_a, turns=1))
    Run.objects.filter(pk=run.pk).update(status="cancelled")
    page = staff_a.post(RUNS, {"action": "deny", "index": 0, "_selected_action": [run.pk, done.pk]}, follow=True)
    assert "Denied 0 paused run(s)" in page.content.decode()
    assert Run.objects.get(pk=done.pk).status == "succeeded"
