"""Every status change of a run, as a table: from each status, which transitions move it, and to what."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.utils import timezone

from agents_app.models import Run
from agents_app.runs import transitions
from agents_app.runs.execute import Step, run_claim
from sessions_app.models import Tenant
from sessions_app.services import session_open

WORKER, OTHER = "w1@host:1", "w2@host:2"
STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"]
BEAT = timezone.now() - timedelta(minutes=1)

#: name → (the call, the status it leads to, the statuses it starts from)
TRANSITIONS: dict[str, tuple[Callable[[Run], object], str, set[str]]] = {
    "claim": (lambda run: transitions.claim(run_id=str(run.pk), worker=WORKER), "running", {"queued"}),
    "requeue": (lambda run: transitions.requeue(run, worker=WORKER, uncount=False), "queued", {"running"}),
    "finish": (
        lambda run: transitions.finish(run, worker=WORKER, status="succeeded", result="ok"),
        "succeeded",
        {"running"},
    ),
    "finish by anyone": (
        lambda run: transitions.finish(run, worker=None, status="failed", error="x"),
        "failed",
        {"running"},
    ),
    "cancel_queued": (lambda run: transitions.cancel_queued(run), "cancelled", {"queued"}),
    "fail_queued": (lambda run: transitions.fail_queued(run, error="broker down"), "failed", {"queued"}),
    "lose": (lambda run: transitions.lose(run), "queued", {"running"}),
    "abandon": (lambda run: transitions.abandon(run, status="failed", error="lost"), "failed", {"running"}),
}


@pytest.fixture
def make_run(make_tenant) -> Callable[[str], Run]:
    tenant = make_tenant().tenant
    session = session_open(tenant=tenant, session_id="s-1")
    agent = tenant.agents.get(name="echo")

    def make(status: str) -> Run:
        worker = WORKER if status == "running" else ""
        return Run.objects.create(
            tenant=tenant, session=session, agent=agent, message="m", status=status, worker=worker, heartbeat_at=BEAT
        )

    return make


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("name", list(TRANSITIONS))
def test_the_transition_table(make_run, name: str, status: str) -> None:
    call, to, starts = TRANSITIONS[name]
    run = make_run(status)
    changed = bool(call(run))
    after = Run.objects.get(pk=run.pk)
    if status in starts:
        assert changed and after.status == to, (name, status, after.status)
        assert (after.finished_at is not None) == (to in Run.FINISHED)
    else:
        assert not changed and after.status == status, (name, status, after.status)  # nothing written


def test_only_the_holder_moves_a_running_run(make_run) -> None:
    run = make_run("running")
    assert not transitions.requeue(run, worker=OTHER, uncount=False)
    assert not transitions.finish(run, worker=OTHER, status="succeeded")
    assert Run.objects.get(pk=run.pk).status == "running"


def test_a_cancel_request_blocks_the_claim_and_the_requeue(make_run) -> None:
    queued, running = make_run("queued"), make_run("running")
    Run.objects.filter(pk__in=[queued.pk, running.pk]).update(cancel_requested_at=timezone.now())
    assert transitions.claim(run_id=str(queued.pk), worker=WORKER) is None
    assert not transitions.requeue(running, worker=WORKER, uncount=False)


def test_a_held_run_is_not_claimed_until_it_is_released(make_run) -> None:
    held = make_run("queued")
    Run.objects.filter(pk=held.pk).update(held=True)  # waits its tenant's turn (runs.dispatch)
    assert transitions.claim(run_id=str(held.pk), worker=WORKER) is None
    Run.objects.filter(pk=held.pk).update(held=False)
    assert transitions.claim(run_id=str(held.pk), worker=WORKER) is not None


def test_the_sweeper_moves_a_run_only_while_its_heartbeat_is_the_one_it_read(make_run) -> None:
    run = make_run("running")
    Run.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now())  # its worker beat meanwhile
    assert not transitions.lose(run) and not transitions.abandon(run, status="failed", error="lost")
    assert Run.objects.get(pk=run.pk).status == "running"


def test_claim_counts_the_attempt_and_requeue_can_uncount_it(make_run) -> None:
    run = make_run("queued")
    claimed = transitions.claim(run_id=str(run.pk), worker=WORKER)
    assert claimed is not None and (claimed.attempts, claimed.worker) == (1, WORKER)
    assert claimed.session.tenant.slug and claimed.agent.name == "echo"  # read with the claim
    assert transitions.requeue(claimed, worker=WORKER, uncount=True)
    after = Run.objects.get(pk=run.pk)
    assert (after.status, after.attempts, after.started_at, after.worker) == ("queued", 0, None, "")


def test_a_claim_is_two_statements(make_run, django_assert_num_queries) -> None:
    second = make_run("queued")
    with django_assert_num_queries(2):  # the UPDATE, then the run with its agent, session and tenant
        claimed = transitions.claim(run_id=str(second.pk), worker=WORKER)
        assert claimed.agent.name == "echo"
        assert (claimed.session.session_id, claimed.session.tenant.slug) == (
            second.session.session_id,
            second.tenant.slug,
        )
        assert claimed.session.pk == second.session_id and claimed.tenant is claimed.session.tenant
    stored = Run.objects.get(pk=second.pk)
    assert (claimed.status, claimed.worker, claimed.attempts) == (stored.status, stored.worker, stored.attempts)
    assert (claimed.started_at, claimed.heartbeat_at, claimed.enqueued_at) == (
        stored.started_at,
        stored.heartbeat_at,
        stored.enqueued_at,
    )
    assert (claimed.message, claimed.is_async, claimed.created_at) == (
        stored.message,
        stored.is_async,
        stored.created_at,
    )
    assert claimed.get_deferred_fields() == set()  # every column of the run


def test_a_run_is_claimed_once_and_never_past_a_cancel(make_run) -> None:
    """``run_claim``, what a worker's task does first: its run, once (a run id delivered twice is
    not executed twice); a run that was not queued is skipped; a queued run a cancel was asked for
    ends cancelled there."""
    queued, running, halted = make_run("queued"), make_run("running"), make_run("queued")
    Run.objects.filter(pk=halted.pk).update(cancel_requested_at=timezone.now())
    claimed = run_claim(str(queued.pk), WORKER)
    assert claimed.pk == queued.pk and (claimed.status, claimed.worker, claimed.attempts) == ("running", WORKER, 1)
    assert run_claim(str(queued.pk), OTHER) is Step.SKIPPED
    assert run_claim(str(running.pk), WORKER) is Step.SKIPPED
    assert run_claim(str(halted.pk), WORKER) is Step.DONE
    assert Run.objects.get(pk=halted.pk).status == "cancelled"


def test_claims_over_the_tenants_limit_of_concurrent_runs_go_back_to_the_queue(make_run) -> None:
    """A worker never starts more of a tenant's runs than its limit: the claims over it are
    given back (queued, the attempt not counted) to be published again later."""
    make_run("running")
    queued = [make_run("queued") for _ in range(3)]
    Tenant.objects.filter(pk=queued[0].tenant_id).update(limit_concurrent_runs=2)
    outcomes = [run_claim(str(run.pk), WORKER) for run in queued]
    assert outcomes[0].pk == queued[0].pk and outcomes[1:] == [Step.BUSY, Step.BUSY]
    rows = {run.pk: (run.status, run.attempts, run.worker) for run in Run.objects.filter(pk__in=[r.pk for r in queued])}
    assert rows == {
        queued[0].pk: ("running", 1, WORKER),
        queued[1].pk: ("queued", 0, ""),
        queued[2].pk: ("queued", 0, ""),
    }
    Tenant.objects.filter(pk=queued[0].tenant_id).update(limit_concurrent_runs=0)  # 0: unlimited
    assert [run_claim(str(r.pk), WORKER).pk for r in queued[1:]] == [r.pk for r in queued[1:]]


def test_fail_queued_can_free_the_idempotency_key(make_run) -> None:
    run = make_run("queued")
    Run.objects.filter(pk=run.pk).update(idempotency_key="k-1")
    assert transitions.fail_queued(run, error="broker down", forget_idempotency_key=True)
    assert Run.objects.get(pk=run.pk).idempotency_key is None
