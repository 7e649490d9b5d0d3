"""The tenants' queue: which queued runs the broker carries now, so that no tenant's backlog starves
another tenant's runs.

The broker is first in, first out: the 5,000 runs one tenant queued would all be ahead of the one
run another tenant queued after them. So the database is the tenants' queue, and the broker only
carries what may run now. A tenant has at most ``runs_in_flight`` runs in flight (its own
``Tenant.limit_runs_in_flight``, else ``AK_LIMITS__RUNS_IN_FLIGHT``; ``0``: no cap): queued runs
handed to the broker, and runs a worker executes (``models.IN_FLIGHT``; a sync or streamed run,
which its request executes, is not one). Its further queued runs are ``held``: ``queued`` still (as
the API shows them), not in the broker, and handed to it oldest first (``enqueued_at``) as its runs
in flight end or pause. Each tenant having at most that many messages in the broker, the workers
take the tenants' runs in turn.

    held = held_for(tenant)                     # a queued run being recorded waits its turn, or not
    queued_on_commit(run, publish)              # once committed: published, or its tenant's turn looked at
    release_after(run)                          # it ended or paused: its tenant's next held runs go
    runs_release(tenant_id=tenant.pk)           # the tenant's oldest held runs, into its free slots

Every way a run is queued decides the same way (``runs.submit``'s ``run_record``, a queued resume, a
schedule's firing, a retry); a run queued again (a busy session, the sweeper's lost run) keeps its
place in flight. Races at the edges: two processes recording at once may both see a free slot (the
tenant is then over its cap by a run or so, for as long as that run lasts); a run held while another
ended is released by whichever of the two processes looks last (each looks once its own write has
committed); and the sweeper (``runs.sweep``) releases the held runs of tenants under their cap at
every pass, whatever happened (a process that died between an end and its release).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone

from agents_app.errors import BrokerUnavailable
from agents_app.models import HELD, IN_FLIGHT, Run
from agents_app.runs import publish
from infra.limits import limit_of
from sessions_app.models import Tenant

logger = logging.getLogger(__name__)

LIMIT = "runs_in_flight"
#: Held runs released at once by a tenant without a cap (its cap was just removed).
UNCAPPED_BATCH = 500


def held_for(tenant: Tenant) -> bool:
    """Whether a queued run the tenant records now waits its turn (``held``): the tenant has held
    runs already (they go first: one query on ``run_held``, a tenant with a backlog's only one), or
    its cap of runs in flight (counted up to the cap on ``run_in_flight``). None without a cap."""
    cap = limit_of(tenant, LIMIT)
    if not cap:
        return False
    return Run.objects.filter(HELD, tenant=tenant).exists() or in_flight(tenant_id=tenant.pk, cap=cap) >= cap


def in_flight(*, tenant_id: int, cap: int) -> int:
    """The tenant's runs in flight, counted up to ``cap`` (the partial index ``run_in_flight``)."""
    return Run.objects.filter(IN_FLIGHT, tenant_id=tenant_id).order_by()[:cap].count()


def queued_on_commit(run: Run, publish_run: Callable[[], Any]) -> None:
    """Once the caller's transaction commits (at once outside one): ``publish_run`` for a run not
    held; for a held one, its tenant's turn looked at again (``runs_release``), in case a slot came
    free since ``held_for`` counted (the run itself goes if it is the tenant's oldest held run)."""
    if run.held:
        tenant_id = run.tenant_id
        transaction.on_commit(lambda: runs_release(tenant_id=tenant_id), robust=True)
    else:
        transaction.on_commit(publish_run)


def release_after(run: Run) -> None:
    """Once the end or pause of ``run`` commits, its tenant's next held runs take the slot it freed
    (``runs_release``; one indexed query when the tenant has none). Nothing for a sync run, which
    held no slot. A failure is logged, not raised: the sweeper releases them at its next pass."""
    deferred = run.get_deferred_fields()
    if "is_async" not in deferred and not run.is_async:
        return
    tenant_id = None if "tenant_id" in deferred else run.tenant_id
    run_id = run.pk
    # A function, not a ``partial``: Django logs a robust callback's failure by its ``__qualname__``.
    transaction.on_commit(lambda: _release_of(run_id=run_id, tenant_id=tenant_id), robust=True)


def _release_of(*, run_id: Any, tenant_id: int | None) -> None:
    if tenant_id is None:
        tenant_id = Run.objects.filter(pk=run_id).values_list("tenant_id", flat=True).first()
    if tenant_id is not None:
        runs_release(tenant_id=tenant_id, slot_freed=True)


def runs_release(*, tenant_id: int, slot_freed: bool = False) -> int:
    """Hand the tenant's oldest held runs to the broker, as many as it has free slots; returns how
    many. Counted again and taken under a lock of the tenant's row (``SELECT … FOR UPDATE``;
    SQLite's ``IMMEDIATE`` transactions take the database's), so that two ends at once never fill
    the same slot twice; each run taken by a conditional UPDATE (held and ``queued``: a cancelled
    one never goes), and published once that commits. When the broker refuses one, it and those
    after it are held again in their places (the sweeper tries again at its next pass).
    ``slot_freed``: one of its runs in flight just ended, so a slot is most likely free: the slots
    are counted once, under the lock, not also before it."""
    if not Run.objects.filter(HELD, tenant_id=tenant_id).exists():
        return 0
    tenant = Tenant.objects.only("pk", "limit_runs_in_flight").filter(pk=tenant_id).first()
    if tenant is None:
        return 0
    cap = limit_of(tenant, LIMIT)
    if cap and not slot_freed and in_flight(tenant_id=tenant_id, cap=cap) >= cap:
        return 0  # no free slot (a backlog's usual case): no lock taken
    taken: list[tuple[Any, Any]] = []
    with transaction.atomic():
        Tenant.objects.select_for_update().filter(pk=tenant_id).values_list("pk").first()
        free = cap - in_flight(tenant_id=tenant_id, cap=cap) if cap else UNCAPPED_BATCH
        held = Run.objects.filter(HELD, tenant_id=tenant_id).order_by("enqueued_at")
        now = timezone.now()
        for run_id, queued_at in held.values_list("pk", "enqueued_at")[: max(free, 0)]:
            if Run.objects.filter(HELD, pk=run_id).update(held=False, enqueued_at=now):
                taken.append((run_id, queued_at))
    for i, (run_id, _) in enumerate(taken):
        try:
            publish.run_publish(run_id=str(run_id))
        except BrokerUnavailable as exc:
            for back, queued_at in taken[i:]:
                Run.objects.filter(pk=back, status=Run.Status.QUEUED).update(held=True, enqueued_at=queued_at)
            logger.warning("%d runs stay held: %s", len(taken) - i, exc)
            return i
    return len(taken)


def tenants_with_held_runs(*, limit: int) -> list[int]:
    """Up to ``limit`` tenants that have held runs (the sweeper releases theirs)."""
    rows = Run.objects.filter(HELD).order_by("tenant_id").values_list("tenant_id", flat=True).distinct()
    return list(rows[:limit])
