"""Reads of agents and runs, always scoped to a tenant."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Collection
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet
from django.http import Http404

from agents_app.errors import IdempotencyConflict
from agents_app.models import Agent, Run, Secret
from agents_app.runs.ends import End, run_end
from agents_app.runs.events import ENDS, PAUSED
from agents_app.secrets import SecretMissing, SecretUnreadable, secret_decrypt
from infra.io_threads import blocking, db
from sessions_app.models import Tenant
from sessions_app.selectors import session_get
from sessions_app.stores import get_store
from sessions_app.stores.base import SessionKey, SessionStore
from sessions_app.stores.events import Event

logger = logging.getLogger(__name__)


def agent_find(*, tenant: Tenant, name: str) -> Agent:
    """The tenant's agent ``name``, or ``Http404``."""
    try:
        return Agent.objects.get(tenant=tenant, name=name)
    except Agent.DoesNotExist:
        raise Http404("unknown agent") from None


def agent_list(*, tenant: Tenant) -> QuerySet[Agent]:
    """The tenant's agents, by name."""
    return Agent.objects.filter(tenant=tenant).order_by("name")


def agent_configs(*, tenant_slug: str, names: Collection[str]) -> dict[str, tuple[str, dict[str, Any]]]:
    """``{name: (framework, config)}`` of those of ``names`` the tenant has (one query)."""
    rows = Agent.objects.filter(tenant__slug=tenant_slug, name__in=list(names))
    return {name: (framework, config) for name, framework, config in rows.values_list("name", "framework", "config")}


def secret_list(*, tenant: Tenant) -> QuerySet[Secret]:
    """The tenant's secrets, by name, without their ciphertexts."""
    return Secret.objects.filter(tenant=tenant).defer("ciphertext").order_by("name")


def secret_value(*, name: str, tenant_id: int | None = None, tenant_slug: str | None = None) -> str:
    """The decrypted value of the tenant's secret ``name`` (the tenant by id or by slug, as a run's
    session key names it): for the run that sends it, and nothing else. ``SecretMissing`` when the
    tenant has none of that name, ``SecretUnreadable`` (a ``SecretMissing``) when no configured
    key decrypts it; either message names the secret only."""
    if (tenant_id is None) == (tenant_slug is None):
        raise TypeError("name the tenant by tenant_id or by tenant_slug")
    rows = Secret.objects.filter(name=name)
    rows = rows.filter(tenant_id=tenant_id) if tenant_id is not None else rows.filter(tenant__slug=tenant_slug)
    ciphertext = rows.values_list("ciphertext", flat=True).first()
    if ciphertext is None:
        raise SecretMissing(f"The tenant has no secret named {name!r}.")
    try:
        return secret_decrypt(ciphertext)
    except SecretUnreadable:
        raise SecretUnreadable(
            f"The secret {name!r} could not be decrypted with AK_SECRETS_KEY or any of AK_SECRETS_OLD_KEYS."
        ) from None


def run_find_idempotent(*, tenant: Tenant, idempotency_key: str | None, request_hash: str) -> Run | None:
    """The run an earlier request with this key made, or None. Raises ``IdempotencyConflict``
    when that request was not the same as this one."""
    if idempotency_key is None:
        return None
    try:
        run = Run.objects.select_related("agent", "session").get(tenant=tenant, idempotency_key=idempotency_key)
    except Run.DoesNotExist:
        return None
    if run.request_hash != request_hash:
        raise IdempotencyConflict("this Idempotency-Key was used with another request")
    return run


def run_get(*, tenant: Tenant, run_id: str) -> Run:
    """The tenant's run with its agent and session, or ``Http404`` (also for an id that is not a UUID)."""
    try:
        return Run.objects.select_related("agent", "session").get(tenant=tenant, pk=uuid.UUID(run_id))
    except (ValueError, Run.DoesNotExist):
        raise Http404("unknown run") from None


def run_list(
    *, tenant: Tenant, session_id: str, limit: int = 50, before: tuple[datetime, uuid.UUID] | None = None
) -> list[Run]:
    """A session's runs, newest first, ``limit`` of them after the ``before`` (created_at, id) cursor."""
    session = session_get(tenant=tenant, session_id=session_id)
    runs = Run.objects.select_related("agent").filter(tenant=tenant, session=session).order_by("-created_at", "-id")
    if before is not None:
        at, run_id = before
        runs = runs.filter(Q(created_at__lt=at) | Q(created_at=at, id__lt=run_id))
    runs = list(runs[:limit])
    for run in runs:
        run.session = session
    return runs


async def run_events(*, run: Run, tenant: Tenant, after: int = 0) -> AsyncIterator[Event | None] | None:
    """The run's events after event ``after``: those past from the store's log, then the others
    as they come, until its end; None after each quiet while (a moment for a keep-alive). A run
    whose end is not in the log ends with the event its row records (``runs.ends``: read as the
    stream opens, then every ``AK_RUN__STREAM_CHECK`` seconds). A ``paused`` event with none after
    it ends the stream too (the run waits for a person; its resume's events follow in the log).
    Raises ``StoreUnavailable`` before anything is streamed; returns None when ``after`` is at or
    after the last event of an ended run, or at the ``paused`` event of a run still paused
    (nothing is repeated or invented)."""
    store, run_id = get_store(), str(run.pk)
    key = SessionKey(tenant=tenant.slug, session_id=run.session.session_id)
    ended = await db(run_end, run_id)
    past = await blocking(store.read_events, key, run_id, after=after)
    if ended is not None and not past and after > 0 and await blocking(_end_seen, store, key, run_id, after):
        return None
    if run.status == Run.Status.PAUSED and not past and after > 0:
        seen = await blocking(store.read_events, key, run_id, after=after - 1, limit=1)
        if seen and seen[0].kind == PAUSED:
            return None
    return _follow(store, key, run_id, past, after, ended)


def _end_seen(store: SessionStore, key: SessionKey, run_id: str, after: int) -> bool:
    """Whether a client that has seen event ``after`` of an ended run, the log having nothing past
    it, has seen the run's last event: event ``after`` is its end, or lies past the log (whose end,
    when the log lacks one, is sent numbered after the log's last event). False when event
    ``after`` is one before the end: the end is still to be sent."""
    seen = store.read_events(key, run_id, after=after - 1, limit=1)
    return not seen or seen[0].kind in ENDS


#: Seconds a stream waits for the store's next event before it sends a keep-alive.
KEEP_ALIVE = 10.0


async def _follow(
    store: SessionStore, key: SessionKey, run_id: str, events: list[Event], last: int, ended: End | None
) -> AsyncIterator[Event | None]:
    checked = time.monotonic()
    while True:
        pending = list(events)
        while pending:
            event = pending.pop(0)
            yield event
            last = event.id
            if event.kind in ENDS:
                return
            if event.kind == PAUSED and not pending and ended is None:  # still paused, or resumed since?
                pending = await blocking(store.read_events, key, run_id, after=last)
                if not pending:
                    return
        if ended is not None:  # the row says it ended: what the log has now, else the row's end
            events = await blocking(store.read_events, key, run_id, after=last)
            if not events:
                yield Event(last + 1, *ended)
                return
            continue
        check = settings.AK_RUN["STREAM_CHECK"]
        events = await store.wait_events(key, run_id, after=last, timeout=min(KEEP_ALIVE, check))
        if not events:
            yield None
            if time.monotonic() - checked >= check:
                checked = time.monotonic()
                ended = await _end_checked(run_id)


async def _end_checked(run_id: str) -> End | None:
    try:
        return await db(run_end, run_id)
    except Exception:  # the database blinked: the next check tries again
        logger.warning("run %s: its end could not be read", run_id, exc_info=True)
        return None
