"""Every status change of a run, as a table: from each status, which transitions move it, and to what."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.utils import timezone

from agents_app.models import Run
from agents_app.runs import transitions
from agents_app.runs.execute import DEFERRED, claims_make
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


def test_a_claim_is_one_statement_and_its_agent(make_run, django_assert_num_queries) -> None:
    second = make_run("queued")
    with django_assert_num_queries(2):  # UPDATE … RETURNING the run, its session's id, its tenant's slug; its agent
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
    assert claimed.get_deferred_fields() == set()  # every column of the run, converted as the ORM does


def test_tasks_that_arrive_together_claim_their_runs_in_one_statement(make_run, django_assert_num_queries) -> None:
    """``claims_make``, what a worker's tasks that arrive together await: one statement for the
    group (and one that counts their tenants' running runs against their limits); each claim gets
    its run, or None for a run that was not queued, one a cancel was asked for, and the second of
    a run id delivered twice (a run is never executed twice)."""
    queued = [make_run("queued") for _ in range(3)]
    running, halted = make_run("running"), make_run("queued")
    Run.objects.filter(pk=halted.pk).update(cancel_requested_at=timezone.now())
    claims = [(str(run.pk), WORKER) for run in [*queued, running, halted, queued[0]]]
    with django_assert_num_queries(2 + 3):  # and each claimed run's agent
        outcomes = claims_make(claims)
    assert [run.pk for run in outcomes[:3]] == [run.pk for run in queued]
    assert outcomes[3:] == [None, None, None]
    assert all(run.status == "running" and run.worker == WORKER and run.attempts == 1 for run in outcomes[:3])
    assert Run.objects.get(pk=halted.pk).status == "queued"


def test_claims_over_the_tenants_limit_of_concurrent_runs_go_back_to_the_queue(make_run) -> None:
    """A worker never starts more of a tenant's runs than its limit: the claims over it are
    given back (queued, the attempt not counted) to be published again later."""
    make_run("running")
    queued = [make_run("queued") for _ in range(3)]
    Tenant.objects.filter(pk=queued[0].tenant_id).update(limit_concurrent_runs=2)
    outcomes = claims_make([(str(run.pk), WORKER) for run in queued])
    assert outcomes[0].pk == queued[0].pk and outcomes[1:] == [DEFERRED, DEFERRED]
    rows = {run.pk: (run.status, run.attempts, run.worker) for run in Run.objects.filter(pk__in=[r.pk for r in queued])}
    assert rows == {
        queued[0].pk: ("running", 1, WORKER),
        queued[1].pk: ("queued", 0, ""),
        queued[2].pk: ("queued", 0, ""),
    }
    Tenant.objects.filter(pk=queued[0].tenant_id).update(limit_concurrent_runs=0)  # 0: unlimited
    assert all(
        run.pk == queued_run.pk
        for run, queued_run in zip(claims_make([(str(r.pk), WORKER) for r in queued[1:]]), queued[1:], strict=True)
    )


def test_fail_queued_can_free_the_idempotency_key(make_run) -> None:
    run = make_run("queued")
    Run.objects.filter(pk=run.pk).update(idempotency_key="k-1")
    assert transitions.fail_queued(run, error="broker down", forget_idempotency_key=True)
    assert Run.objects.get(pk=run.pk).idempotency_key is None
