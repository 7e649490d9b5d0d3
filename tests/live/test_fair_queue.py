"""Fair queues, live: one tenant's backlog of queued runs does not starve another tenant's run.
Real gunicorn, a Celery worker, celery beat and a Redis broker; the tenants talk HTTP only."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import pytest

from tests.live.queue import Queue
from tests.live.servers import Platform, make_tenants
from tests.live.test_many_runs import most_at_once

pytestmark = pytest.mark.slow

CAP = 10
BACKLOG = 200


def another_tenant(queue: Queue) -> Queue:
    """The same platform and workers, seen by a tenant of its own."""
    [(slug, key, secret)] = make_tenants(queue.platform.env, 1)
    platform = Platform(url=queue.platform.url, key=key, env=queue.platform.env, webhook_secret=secret, tenant=slug)
    return dataclasses.replace(queue, platform=platform)


def at(run: dict, field: str) -> datetime:
    return datetime.fromisoformat(run[field])


def test_a_tenants_queued_run_starts_while_another_tenant_has_hundreds_queued(start_queue) -> None:
    # One worker of 2 x CAP threads, a cap of CAP runs in flight per tenant: tenant A's backlog takes
    # half the worker at most, and each of A's ends hands the broker A's next run, never a flood.
    # The worker joins once both tenants' runs are queued: A's whole backlog is ahead of B's run
    # however slowly the machine takes requests (A's runs would otherwise end as fast as they come).
    queue_a: Queue = start_queue(
        "redis",
        workers=0,
        env={"AK_LIMITS__RUNS_IN_FLIGHT": str(CAP), "AK_RUN__HEARTBEAT_TIMEOUT": "20"},
        fresh=True,
    )
    queue_b = another_tenant(queue_a)
    model_a, model_b = queue_a.agent("model", delay_s=1), queue_b.agent("model", delay_s=1)
    # One after another: no two records race for the tenant's last slot, so the cap is exact.
    ids_a = [queue_a.enqueue(model_a, f"a{i}", f"sa{i}")["run_id"] for i in range(BACKLOG)]
    id_b = queue_b.enqueue(model_b, "b", "sb")["run_id"]
    queue_a.add_worker(concurrency=2 * CAP)

    run_b = queue_b.finished(id_b, timeout=120)
    waiting_a = [queue_a.run(run_id) for run_id in ids_a]
    runs_a = [queue_a.finished(run_id, timeout=300) for run_id in ids_a]

    assert run_b["status"] == "succeeded" and run_b["result"] == "echo[turns=1]: b"
    assert [r["status"] for r in runs_a] == ["succeeded"] * BACKLOG
    assert set(queue_a.invoked().values()) == {1} and len(queue_a.invoked()) == BACKLOG + 1  # each once
    # A still had most of its backlog queued when B's run started, ...
    started_after_b = [r for r in runs_a if at(r, "started_at") > at(run_b, "started_at")]
    assert len(started_after_b) >= BACKLOG // 4, "B's run did not start before A's backlog was through"
    assert any(r["status"] == "queued" for r in waiting_a)  # (also as GET /runs shows it: still "queued")
    # ... and B's run went ahead of it: no more of A's runs started while B's waited than A had in
    # flight (first in, first out, all of A's queued runs would have started first).
    b_waited = (at(run_b, "created_at"), at(run_b, "started_at"))
    started_while_b_waited = [r for r in runs_a if b_waited[0] < at(r, "started_at") < b_waited[1]]
    assert len(started_while_b_waited) <= CAP, len(started_while_b_waited)
    # A never had more than its cap executing at once.
    assert most_at_once(runs_a) <= CAP
