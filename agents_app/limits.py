"""The limits of ``infra.limits`` on agents, secrets, runs and event streams.

Concurrent runs are the tenant's runs ``running`` in the database, whoever executes them. A sync or
streamed run over the limit is refused (429, nothing recorded); a queued run is accepted, and a
worker that claims it over the limit puts it back in the queue (``claim_over_limit``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

from django.conf import settings

from agents_app.models import Agent, Run, Schedule, Secret
from agents_app.runner import Every
from infra.io_threads import blocking
from infra.limits import (
    HELD,
    STORED,
    LimitReached,
    Slot,
    limit_of,
    slot_release,
    slot_renew,
    slot_take,
    slots_held,
    stored_limit_check,
)
from sessions_app.models import Session, Tenant

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


def concurrent_runs_check(*, tenant: Tenant) -> None:
    """429 ``LimitReached`` if one more run ``running`` is over the tenant's limit of concurrent
    runs (a sync or streamed run: refused, nothing recorded)."""
    limit = limit_of(tenant, "concurrent_runs")
    if limit and Run.objects.filter(tenant=tenant, status=RUNNING).order_by()[:limit].count() >= limit:
        raise LimitReached("concurrent_runs")


def claim_over_limit(run: Run) -> bool:
    """Whether a run a worker just claimed (``running``, counted) puts its tenant over its limit
    of concurrent runs (``run.tenant`` freshly loaded): the worker then puts it back in the queue.
    (Two workers over at once both give theirs back: never more.)"""
    limit = limit_of(run.tenant, "concurrent_runs")
    running = Run.objects.filter(tenant_id=run.tenant_id, status=RUNNING).order_by()
    return bool(limit) and running[: limit + 1].count() > limit


def limits_use(*, tenant: Tenant, builtins: Iterable[str]) -> dict[str, dict[str, int | None]]:
    """Each of the tenant's limits (``0``: unlimited) and its use now, counted as its check counts
    it (built-in agents are not counted). Open event streams are counted only under a limit (a
    stream takes a slot only then): ``None`` without one."""
    counted = {
        "agents": Agent.objects.filter(tenant=tenant).exclude(name__in=list(builtins)),
        "secrets": Secret.objects.filter(tenant=tenant),
        "sessions": Session.objects.filter(tenant=tenant),
        "schedules": Schedule.objects.filter(tenant=tenant),
        "concurrent_runs": Run.objects.filter(tenant=tenant, status=RUNNING),
    }
    use: dict[str, dict[str, int | None]] = {}
    for name in sorted(STORED | HELD):
        limit = limit_of(tenant, name)
        if name == "event_streams":
            used = slots_held(scope=f"streams:{tenant.pk}", limit=limit) if limit else None
        else:
            used = counted[name].order_by().count()
        use[name] = {"limit": limit, "used": used}
    return use


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
