"""A tenant's schedules: made, changed and deleted here, each checked whole (``ScheduleInvalid``
names every bad field), and read only through the tenant (another tenant's is ``Http404``).

A change that touches when it fires (``cron``, ``at``, ``timezone``, ``enabled``) computes
``next_run_at`` anew; any other change leaves it alone, so that it never undoes a firing's claim.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db.models import Q
from django.http import Http404
from django.utils import timezone

from agents_app.models import Run, Schedule
from agents_app.schedules import timing
from agents_app.services import agent_get
from infra.limits import stored_limit_check
from sessions_app.models import Tenant

#: The fields of a schedule a caller gives, by the model's names (``time_zone`` is the API's
#: ``timezone``, ``webhook_url`` its ``webhook``).
FIELDS = ("agent", "message", "session_id", "cron", "time_zone", "at", "webhook_url", "enabled")
#: The fields that say when it fires: a change of one computes ``next_run_at`` anew.
TIMING = frozenset({"cron", "at", "time_zone", "enabled"})


class ScheduleInvalid(ValueError):
    """A schedule as it would be saved is not valid (400): ``fields`` names each bad field of the
    request (``agent``, ``cron``, ``timezone``, ``at``) with its messages."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{field}: {' '.join(messages)}" for field, messages in fields.items()))
        self.fields = fields


def schedule_create(*, tenant: Tenant, now: datetime | None = None, **fields: Any) -> Schedule:
    """A new schedule of ``tenant`` from ``FIELDS`` (``agent`` a name; ``at`` an ISO 8601 string
    or a datetime; exactly one of ``cron`` and ``at``). Raises ``ScheduleInvalid``, or
    ``LimitReached`` (403) when the tenant has as many schedules as its limit allows."""
    schedule = Schedule(tenant=tenant, time_zone="UTC", enabled=True)
    schedule_apply(schedule, fields, now=now or timezone.now(), creating=True)
    stored_limit_check(tenant=tenant, name="schedules", rows=Schedule.objects.filter(tenant=tenant))
    schedule.save()
    return schedule


def schedule_update(*, schedule: Schedule, now: datetime | None = None, **changes: Any) -> Schedule:
    """``schedule`` (a fresh row: ``schedule_get``) with ``changes`` of ``FIELDS``; a ``cron``
    makes it a cron schedule (its ``at`` dropped) and an ``at`` a one-time one. Raises
    ``ScheduleInvalid``. Saves only the fields changed (and ``next_run_at`` with the timing)."""
    if not changes:
        return schedule
    schedule_apply(schedule, changes, now=now or timezone.now(), creating=False)
    names = set(changes) | {"cron", "at", "updated_at"}
    if TIMING & changes.keys():
        names |= {"next_run_at", "last_fired_at"}
    schedule.save(update_fields=sorted(names))
    return schedule


def schedule_delete(*, schedule: Schedule) -> None:
    """Delete it: no due time of it fires after this (a firing claims a row that exists); the
    runs it made stay, no longer tied to it."""
    schedule.delete()


def schedule_list(*, tenant: Tenant) -> list[Schedule]:
    """The tenant's schedules, newest first."""
    return list(Schedule.objects.select_related("agent").filter(tenant=tenant).order_by("-created_at", "-id"))


def schedule_get(*, tenant: Tenant, schedule_id: str) -> Schedule:
    """The tenant's schedule, or ``Http404`` (also for an id that is not a UUID)."""
    try:
        return Schedule.objects.select_related("agent").get(tenant=tenant, pk=uuid.UUID(schedule_id))
    except (ValueError, Schedule.DoesNotExist):
        raise Http404("unknown schedule") from None


def schedule_runs(
    *, schedule: Schedule, limit: int = 50, before: tuple[datetime, uuid.UUID] | None = None
) -> list[Run]:
    """The runs the schedule made, newest first, ``limit`` of them after the ``before`` cursor."""
    runs = Run.objects.select_related("agent", "session").filter(tenant_id=schedule.tenant_id, schedule=schedule)
    runs = runs.order_by("-created_at", "-id")
    if before is not None:
        at, run_id = before
        runs = runs.filter(Q(created_at__lt=at) | Q(created_at=at, id__lt=run_id))
    return list(runs[:limit])


def next_run(schedule: Schedule, *, now: datetime) -> datetime | None:
    """When ``schedule`` fires next after ``now``: None when disabled, or once it fired its ``at``."""
    if not schedule.enabled:
        return None
    if schedule.cron:
        return timing.cron_next(schedule.cron, schedule.time_zone, now)
    if schedule.at is not None and schedule.at > now and schedule.last_fired_at is None:
        return schedule.at
    return None


def schedule_apply(schedule: Schedule, fields: dict[str, Any], *, now: datetime, creating: bool) -> None:
    """Set ``fields`` (of ``FIELDS``) on ``schedule``, unsaved, checked whole: ``ScheduleInvalid``
    names every bad field. An empty ``cron`` or ``at`` clears it; a ``cron`` clears ``at`` and an
    ``at`` clears ``cron``. ``next_run_at`` is computed anew when a timing field is among them."""
    unknown = fields.keys() - set(FIELDS)
    if unknown:
        raise TypeError(f"not fields of a schedule: {sorted(unknown)}")
    errors: dict[str, list[str]] = {}
    if "agent" in fields:
        try:
            schedule.agent = agent_get(tenant=schedule.tenant, name=fields["agent"])
        except Http404:
            errors["agent"] = [f"The tenant has no agent named {fields['agent']!r}."]
    for name in ("message", "enabled"):
        if name in fields:
            setattr(schedule, name, fields[name])
    for name in ("session_id", "webhook_url"):
        if name in fields:
            setattr(schedule, name, fields[name] or "")
    if "time_zone" in fields:
        schedule.time_zone = fields["time_zone"]
        try:
            timing.zone(schedule.time_zone)
        except ValueError as exc:
            errors["timezone"] = [str(exc)]
    if fields.get("cron") and fields.get("at"):
        errors["at"] = ["Give one of `cron` and `at`, not both."]
    else:
        _timing_apply(schedule, fields, now=now, errors=errors)
    if errors:
        raise ScheduleInvalid(errors)
    if creating or TIMING & fields.keys():
        schedule.next_run_at = next_run(schedule, now=now)


def _timing_apply(schedule: Schedule, fields: dict[str, Any], *, now: datetime, errors: dict[str, list[str]]) -> None:
    if "cron" in fields:
        schedule.cron = fields["cron"] or ""
        if schedule.cron:
            schedule.at = None
    if "at" in fields:
        schedule.at = fields["at"] or None
        if schedule.at is not None:
            schedule.cron, schedule.last_fired_at = "", None  # a new time: it fires once more
            if isinstance(schedule.at, str) and "timezone" not in errors:
                try:
                    schedule.at = timing.at_parsed(schedule.at, schedule.time_zone)
                except ValueError as exc:
                    errors["at"] = [str(exc)]
            if isinstance(schedule.at, datetime) and schedule.at <= now:
                errors["at"] = [f"{schedule.at.isoformat()} is past (it is {now.isoformat()}): give a time to come."]
    if bool(schedule.cron) == (schedule.at is not None):
        errors.setdefault("cron", ["Give one of `cron` (a cron expression) and `at` (one time)."])
    elif schedule.cron and "timezone" not in errors and TIMING & fields.keys():
        try:
            timing.cron_checked(schedule.cron, schedule.time_zone, now)
        except ValueError as exc:
            errors["cron"] = [str(exc)]
