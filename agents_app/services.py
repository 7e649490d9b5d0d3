"""Agents and runs: validated writes, and the run of a message through the runner."""

from __future__ import annotations

import uuid
from typing import Any

from asgiref.sync import async_to_sync
from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils import timezone

from agents_app.frameworks import get_framework
from agents_app.models import Agent, Run
from agents_app.runner import runner
from sessions_app.models import Tenant
from sessions_app.selectors import session_key
from sessions_app.services import session_open, session_record_commit
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
    agent = Agent.objects.filter(tenant=tenant, name=name).first()
    if agent is None and name in BUILTIN_AGENTS:
        agent_ensure_builtins(tenant=tenant)
        agent = Agent.objects.filter(tenant=tenant, name=name).first()
    if agent is None:
        raise Http404("unknown agent")
    return agent


def run_sync(
    *,
    tenant: Tenant,
    agent_name: str,
    message: str,
    session_id: str | None = None,
    user_id: str | None = None,
    wait: float | None = None,
) -> Run:
    """Run ``message`` now and return the finished Run.

    ``wait`` is how long to wait for a busy session (``0``: not at all; ``None``: the setting).
    Store errors (``SessionBusy``, ``StoreUnavailable``, ...) are recorded on the run as
    ``failed`` and raised; the session is left as it was.
    """
    agent = agent_get(tenant=tenant, name=agent_name)
    session = session_open(tenant=tenant, session_id=session_id, user_id=user_id)
    run = Run.objects.create(
        tenant=tenant,
        session=session,
        agent=agent,
        message=message,
        status=Run.Status.RUNNING,
        attempts=1,
        started_at=timezone.now(),
    )
    try:
        outcome = async_to_sync(runner.execute)(agent, session_key(session), message, wait=wait)
    except StoreError as exc:
        _run_finish(run, status=Run.Status.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise
    _run_finish(run, status=Run.Status.SUCCEEDED, result=outcome.reply)
    session_record_commit(session=session, total=outcome.commit.total, at=run.finished_at)
    return run


def _run_finish(run: Run, *, status: str, result: str | None = None, error: str | None = None) -> None:
    run.status, run.result, run.error, run.finished_at = status, result, error, timezone.now()
    run.save(update_fields=["status", "result", "error", "finished_at"])


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
