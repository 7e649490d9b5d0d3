"""Agents and runs: validated writes, and the run of a message through the runner."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import Http404
from django.utils import timezone

from agents_app.frameworks import get_framework
from agents_app.lifecycle import execute_taken, publish_or_fail, run_cancel, run_retry, web_worker_name
from agents_app.models import Agent, Run
from agents_app.runner import RunStopped
from akplatform import sql
from sessions_app.models import Session, Tenant
from sessions_app.selectors import session_get
from sessions_app.services import session_open
from sessions_app.stores.base import StoreError

BUILTIN_AGENTS: dict[str, dict[str, Any]] = {"echo": {"framework": "echo", "config": {}}}


class AgentExists(ValueError):
    pass


def agent_ensure_builtins(*, tenant: Tenant) -> None:
    for name, spec in BUILTIN_AGENTS.items():
        Agent.objects.get_or_create(tenant=tenant, name=name, defaults=spec)


def agent_create(*, tenant: Tenant, name: str, framework: str, config: dict[str, Any]) -> Agent:
    """Create an agent; raises ``UnknownFramework``, ``ConfigError`` or ``AgentExists``."""
    config = get_framework(framework).validate_config(config)
    try:
        with transaction.atomic():
            return Agent.objects.create(tenant=tenant, name=name, framework=framework, config=config)
    except IntegrityError:
        raise AgentExists(f"an agent named {name!r} exists") from None


def agent_get(*, tenant: Tenant, name: str) -> Agent:
    """The tenant's agent, or ``Http404``. Built-in agents are made on first use."""
    agent = sql.fetch(Agent, tenant_id=tenant.pk, name=name)
    if agent is None and name in BUILTIN_AGENTS:
        agent_ensure_builtins(tenant=tenant)
        agent = sql.fetch(Agent, tenant_id=tenant.pk, name=name)
    if agent is None:
        raise Http404("unknown agent")
    return agent


def _agent_and_session(
    *, tenant: Tenant, agent_name: str, session_id: str | None, user_id: str | None
) -> tuple[Agent, Session]:
    """The run's agent (``Http404`` if unknown) and session (made if new). An existing agent and
    session with no user to attach are read in one query: what most turns of a conversation are."""
    if session_id is not None and user_id is None:
        agent, session = sql.fetch_each(
            (Agent, {"tenant_id": tenant.pk, "name": agent_name}),
            (Session, {"tenant_id": tenant.pk, "session_id": session_id}),
        )
        if agent is not None and session is not None:
            session.tenant = tenant  # the row's own tenant: spares the query its store key would make
            return agent, session
    agent = agent_get(tenant=tenant, name=agent_name)
    return agent, session_open(tenant=tenant, session_id=session_id, user_id=user_id)


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with another request."""


def run_find_idempotent(*, tenant: Tenant, idempotency_key: str | None, request_hash: str) -> Run | None:
    """The run an earlier request with this key made, or None. Raises ``IdempotencyConflict``
    when that request was not the same as this one."""
    if idempotency_key is None:
        return None
    run = Run.objects.select_related("agent", "session").filter(tenant=tenant, idempotency_key=idempotency_key).first()
    if run is not None and run.request_hash != request_hash:
        raise IdempotencyConflict("this Idempotency-Key was used with another request")
    return run


def _run_create(run: Run, **looked_up: sql.Lookup) -> tuple[Run | None, bool]:
    """Insert ``run``, its ``looked_up`` foreign keys read in the same statement (None when one
    of them names no row); with a key another request made first, return that run instead.
    Returns the run and whether it is new."""
    if run.idempotency_key is None:
        made = sql.insert_looking_up(run, **looked_up)
        return made, made is not None
    try:
        with transaction.atomic():  # in a caller's transaction, a savepoint: a duplicate key leaves it usable
            made = sql.insert_looking_up(run, **looked_up)
            return made, made is not None
    except IntegrityError:
        pass
    key, request_hash = run.idempotency_key, run.request_hash
    existing = run_find_idempotent(tenant=run.tenant, idempotency_key=key, request_hash=request_hash)
    assert existing is not None
    return existing, False


def run_sync(
    *,
    tenant: Tenant,
    agent_name: str,
    message: str,
    session_id: str | None = None,
    user_id: str | None = None,
    wait: float | None = None,
    idempotency_key: str | None = None,
    request_hash: str = "",
) -> tuple[Run, bool]:
    """Run ``message`` now, in this process; return the finished Run and whether it is new.

    ``wait`` is how long to wait for a busy session (``0``: not at all; ``None``: the setting).
    Store errors (``SessionBusy``, ``StoreUnavailable``, ...) and the runner's stops
    (``RunCancelled``, ``RunTimedOut``) are recorded on the run and raised, as is an adapter's
    failure (``RunFailed``); the session is left as it was.
    """
    agent, session = _agent_and_session(tenant=tenant, agent_name=agent_name, session_id=session_id, user_id=user_id)
    worker, now = web_worker_name(), timezone.now()
    run, created = _run_create(
        Run(
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            tenant=tenant,
            session=session,
            agent=agent,
            message=message,
            status=Run.Status.RUNNING,
            attempts=1,
            worker=worker,
            started_at=now,
            heartbeat_at=now,
        )
    )
    assert run is not None  # nothing looked up: written, or the key's earlier run
    if not created:
        return run, False
    try:
        execute_taken(run, worker=worker, wait=wait)
    except (StoreError, RunStopped):
        raise
    except Exception as exc:
        raise RunFailed(run) from exc
    return run, True


class RunFailed(Exception):
    """The agent's adapter raised: the run is recorded as failed."""

    def __init__(self, run: Run) -> None:
        super().__init__(run.error or "the run failed")
        self.run = run


def run_enqueue(
    *,
    tenant: Tenant,
    agent_name: str,
    message: str,
    session_id: str | None = None,
    user_id: str | None = None,
    webhook_url: str = "",
    idempotency_key: str | None = None,
    request_hash: str = "",
) -> tuple[Run, bool]:
    """Record a queued run and hand it to a worker once the row is committed.

    Returns the run and whether it is new (False: an earlier request with the same key made it).
    Raises ``BrokerUnavailable`` (the run is then recorded as failed).
    """
    run = Run(
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        tenant=tenant,
        message=message,
        is_async=True,
        enqueued_at=timezone.now(),
        webhook_url=webhook_url,
        webhook_status=Run.Webhook.PENDING if webhook_url else Run.Webhook.NONE,
    )
    made = None
    if session_id is not None and user_id is None:
        # Most turns: the agent and the session exist; their keys are read by the INSERT itself.
        made, created = _run_create(
            run,
            agent=(Agent, {"tenant_id": tenant.pk, "name": agent_name}),
            session=(Session, {"tenant_id": tenant.pk, "session_id": session_id}),
        )
        if made is not None and created:  # what the caller reads of them; the rest on demand
            run.agent = sql.loaded(Agent, id=run.agent_id, tenant_id=tenant.pk, name=agent_name)
            run.session = sql.loaded(Session, id=run.session_id, tenant_id=tenant.pk, session_id=session_id)
    if made is None:  # a new session (or agent), or a user to attach
        run.agent, run.session = _agent_and_session(
            tenant=tenant, agent_name=agent_name, session_id=session_id, user_id=user_id
        )
        made, created = _run_create(run)
    assert made is not None
    run = made
    if created:  # at once, or when the caller's transaction commits
        transaction.on_commit(lambda: publish_or_fail(str(run.pk)))
    return run, created


def run_get(*, tenant: Tenant, run_id: str) -> Run:
    """The tenant's run, or ``Http404`` (also for an id that is not a UUID)."""
    try:
        run_id = str(uuid.UUID(run_id))
    except ValueError:
        raise Http404("unknown run") from None
    run = Run.objects.select_related("agent", "session").filter(tenant=tenant, pk=run_id).first()
    if run is None:
        raise Http404("unknown run")
    return run


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


__all__ = [
    "AgentExists",
    "IdempotencyConflict",
    "RunFailed",
    "agent_create",
    "agent_ensure_builtins",
    "agent_get",
    "run_cancel",
    "run_enqueue",
    "run_find_idempotent",
    "run_get",
    "run_list",
    "run_retry",
    "run_sync",
]
