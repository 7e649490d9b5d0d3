"""The limits of ``akplatform.limits`` on agents, secrets, runs and event streams.

Concurrent runs are the tenant's runs ``running`` in the database, whoever executes them (a web
process's sync runs, the workers' queued ones): the sweeper ends those of a process that died, so
nothing leaks. A sync or streamed run over the limit is refused (429, nothing recorded); a queued
run is accepted, and a worker that claims it over the limit puts it back in the queue to try again
later (``claims_over_limit``): it waits its turn. Requests that arrive at the very same moment in
different web processes may pass the limit together; a worker never starts more than it allows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

from django.conf import settings
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce

from agents_app.models import Agent, Run, Secret
from agents_app.runner import Every
from akplatform.aio import blocking
from akplatform.limits import LimitReached, Slot, limit_of, slot_release, slot_renew, slot_take, stored_limit_check
from sessions_app.models import Tenant

RUNNING = Run.Status.RUNNING


def agents_limit_check(*, tenant: Tenant, builtins: Iterable[str]) -> None:
    """403 ``LimitReached`` if one more agent is over the tenant's limit (built-ins do not count)."""
    rows = Agent.objects.filter(tenant=tenant).exclude(name__in=list(builtins))
    stored_limit_check(tenant=tenant, name="agents", rows=rows)


def secrets_limit_check(*, tenant: Tenant, name: str) -> None:
    """403 ``LimitReached`` if a new secret ``name`` is over the tenant's limit (a rotation is not new)."""
    rows = Secret.objects.filter(tenant=tenant)
    if limit_of(tenant, "secrets") and not rows.filter(name=name).exists():
        stored_limit_check(tenant=tenant, name="secrets", rows=rows)


def runs_over_limit(requests: Sequence[dict[str, Any]]) -> dict[int, LimitReached]:
    """Of ``run_create`` requests that would start ``running`` at once (sync runs), those over
    their tenant's limit of concurrent runs, by index: the first ones of a tenant pass, as many
    as it has room for. One query for all."""
    starting = [i for i, request in enumerate(requests) if request.get("status") == RUNNING]
    tenants = {requests[i]["tenant"].pk: requests[i]["tenant"] for i in starting}
    limits = {pk: limit_of(tenant, "concurrent_runs") for pk, tenant in tenants.items()}
    limited = [pk for pk, limit in limits.items() if limit]
    if not limited:
        return {}
    rows = Run.objects.filter(tenant_id__in=limited, status=RUNNING).order_by().values("tenant_id")
    room = {pk: limits[pk] for pk in limited}
    for row in rows.annotate(n=Count("pk")):
        room[row["tenant_id"]] -= row["n"]
    over: dict[int, LimitReached] = {}
    for i in starting:
        pk = requests[i]["tenant"].pk
        if pk not in room:
            continue
        if room[pk] <= 0:
            over[i] = LimitReached("concurrent_runs")
        room[pk] -= 1
    return over


def claims_over_limit(runs: Sequence[Run]) -> set[str]:
    """Of runs a worker just claimed (``running``, counted), the ids of those that put their
    tenant over its limit of concurrent runs: the last claimed of each such tenant, as many as
    it is over. One query. (Two workers over at once both give theirs back: never more.)"""
    mine: dict[int, list[Run]] = {}
    for run in runs:
        mine.setdefault(run.tenant_id, []).append(run)
    if not mine:
        return set()
    # A correlated count per tenant, on the (tenant, status) index: never a scan of all its runs.
    counted = Run.objects.filter(tenant=OuterRef("pk"), status=RUNNING).order_by().values("tenant")
    running = Coalesce(Subquery(counted.annotate(n=Count("pk")).values("n")[:1], output_field=IntegerField()), 0)
    rows = Tenant.objects.filter(pk__in=list(mine)).order_by().annotate(running=running)
    default = settings.AK_LIMITS["CONCURRENT_RUNS"]
    over: set[str] = set()
    for pk, own, count in rows.values_list("pk", "limit_concurrent_runs", "running"):
        limit = default if own is None else own
        excess = count - limit
        if limit and excess > 0:
            over.update(str(run.pk) for run in mine[pk][-excess:])
    return over


async def stream_slot(*, tenant: Tenant) -> Slot | None:
    """A slot of the tenant's open event streams (``release`` it when the stream ends), None when
    the tenant has no limit; 429 ``LimitReached`` when all are taken."""
    limit = limit_of(tenant, "event_streams")
    if not limit:
        return None
    lease = settings.AK_LIMITS["STREAM_LEASE"]
    slot = await blocking(slot_take, scope=f"streams:{tenant.pk}", limit=limit, lease=lease)
    if slot is None:
        raise LimitReached("event_streams")
    return slot


async def release(slot: Slot | None) -> None:
    if slot is not None:
        await blocking(slot_release, slot)


async def holding(slot: Slot | None, events: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """``events``, with ``slot`` renewed while they last and given back when they end, however
    they end (the client went away too)."""
    lease = settings.AK_LIMITS["STREAM_LEASE"]

    async def renew() -> None:
        await blocking(slot_renew, slot, lease=lease)

    keep = Every(lease / 3, renew) if slot is not None else None
    try:
        async for event in events:
            yield event
    finally:
        if keep is not None:
            await keep.stop()
        await release(slot)
