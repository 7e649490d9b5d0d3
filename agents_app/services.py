"""Agents and runs: validated writes, and the run of a message through the runner."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from functools import partial
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.http import Http404
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from agents_app.errors import AgentInvalid, BuiltinAgent, IdempotencyConflict, InUse
from agents_app.limits import agents_limit_check, runs_over_limit, secrets_limit_check
from agents_app.models import Agent, Run, Secret
from agents_app.references import agent_config_validated, agents_handing_off_to, agents_using_secret, takes_handoffs
from agents_app.runs.cancel import run_cancel, run_retry
from agents_app.runs.execute import Step, execute_claimed, web_worker_name
from agents_app.runs.publish import publish_or_fail
from agents_app.secrets import SECRET_NAME_PATTERN, secret_encrypt, secret_reencrypt, secret_value_check
from agents_app.selectors import run_find_idempotent
from akplatform.limits import LimitReached
from akplatform.together import Together
from sessions_app.models import Session, Tenant
from sessions_app.services import session_open, sessions_open
from sessions_app.stores.events import Event

BUILTIN_AGENTS: dict[str, dict[str, Any]] = {"echo": {"framework": "echo", "config": {}}}


class AgentExists(ValueError):
    pass


def agent_ensure_builtins(*, tenant: Tenant) -> None:
    for name, spec in BUILTIN_AGENTS.items():
        Agent.objects.get_or_create(tenant=tenant, name=name, defaults=spec)


def tenant_given_builtins(sender: type[Tenant], instance: Tenant, created: bool, **kwargs: Any) -> None:
    """``post_save`` of a Tenant: a new tenant gets its built-in agents."""
    if created:
        agent_ensure_builtins(tenant=instance)


def agent_create(*, tenant: Tenant, name: str, framework: str, config: dict[str, Any]) -> Agent:
    """Create an agent; raises ``AgentInvalid`` (naming every bad field: ``agent_config_validated``),
    ``AgentExists`` or ``LimitReached`` (the tenant's limit of agents)."""
    config = agent_config_validated(tenant=tenant, name=name, framework=framework, config=config)
    agents_limit_check(tenant=tenant, builtins=BUILTIN_AGENTS)
    try:
        with transaction.atomic():
            return Agent.objects.create(tenant=tenant, name=name, framework=framework, config=config)
    except IntegrityError:
        raise AgentExists(f"an agent named {name!r} exists") from None


def agent_update(*, agent: Agent, framework: str | None = None, config: dict[str, Any] | None = None) -> Agent:
    """Give ``agent`` (a fresh row: ``agent_find``) a new framework and/or a new config (the whole
    config: what it does not name is gone), checked whole as ``agent_create`` checks it; the next
    run of the agent uses them. Raises ``AgentInvalid``, ``BuiltinAgent`` (a valid change of a
    built-in agent), or ``InUse`` when a new framework cannot take the handoffs other agents make
    to it."""
    if framework is None and config is None:
        return agent
    framework = agent.framework if framework is None else framework
    config = agent.config if config is None else config
    config = agent_config_validated(tenant=agent.tenant, name=agent.name, framework=framework, config=config)
    if agent.name in BUILTIN_AGENTS:
        raise BuiltinAgent(f"{agent.name!r} is built in: every tenant has it as it is")
    if framework != agent.framework and not takes_handoffs(framework):
        handing_off = agents_handing_off_to(tenant=agent.tenant, name=agent.name)
        if handing_off:
            raise InUse(f"agents hand off to {agent.name!r}; a {framework} agent cannot take a handoff", handing_off)
    agent.framework, agent.config = framework, config
    agent.save(update_fields=["framework", "config", "updated_at"])
    return agent


def agent_delete(*, agent: Agent) -> None:
    """Delete ``agent``: gone from the tenant's agents, its name free again; its runs and
    sessions stay (``Agent.deleted_at``). Raises ``BuiltinAgent``, or ``InUse`` naming the
    tenant's agents that hand off to it."""
    if agent.name in BUILTIN_AGENTS:
        raise BuiltinAgent(f"{agent.name!r} is built in: every tenant has it")
    handing_off = agents_handing_off_to(tenant=agent.tenant, name=agent.name)
    if handing_off:
        raise InUse(f"agents hand off to {agent.name!r}: change their handoffs first", handing_off)
    agent.deleted_at = timezone.now()
    agent.save(update_fields=["deleted_at", "updated_at"])


def agent_get(*, tenant: Tenant, name: str) -> Agent:
    """The tenant's agent, or ``Http404``. Built-in agents are made on first use."""
    try:
        return Agent.objects.get(tenant=tenant, name=name)
    except Agent.DoesNotExist:
        if name not in BUILTIN_AGENTS:
            raise Http404("unknown agent") from None
    agent_ensure_builtins(tenant=tenant)
    return Agent.objects.get(tenant=tenant, name=name)


def run_create(
    *,
    tenant: Tenant,
    agent_name: str,
    message: str,
    session_id: str | None = None,
    user_id: str | None = None,
    idempotency_key: str | None = None,
    request_hash: str = "",
    **fields: Any,
) -> tuple[Run, bool]:
    """Record a run of ``agent_name`` on the session (made if new) with ``fields`` (status, ...).
    Without a ``session_id``, the new session's thread and index row and the run are one
    transaction.

    Returns the run and whether it is new: with an ``idempotency_key`` an earlier request made,
    that request's run (``IdempotencyConflict`` if it was another request). ``Http404`` for an
    unknown agent (also one deleted since this process remembered it); ``LimitReached`` for a
    new session over the tenant's limit of sessions."""
    agent = agent_get(tenant=tenant, name=agent_name)
    fields = {"tenant": tenant, "agent": agent, "message": message, **fields}
    fields.update(idempotency_key=idempotency_key, request_hash=request_hash)
    try:
        if session_id is None:  # a new session: its thread, its index row and the run, all or nothing
            with transaction.atomic():
                run = Run.objects.create(session=session_open(tenant=tenant, user_id=user_id), **fields)
        else:
            session = session_open(tenant=tenant, session_id=session_id, user_id=user_id)
            # With a key, a savepoint in a caller's transaction: a duplicate key leaves it usable.
            with transaction.atomic() if idempotency_key is not None else contextlib.nullcontext():
                run = Run.objects.create(session=session, **fields)
        return run, True
    except IntegrityError:
        if idempotency_key is not None:
            existing = run_find_idempotent(tenant=tenant, idempotency_key=idempotency_key, request_hash=request_hash)
            if existing is not None:
                return existing, False
        if not Agent.objects.filter(pk=agent.pk).exists():  # deleted in another process meanwhile
            raise Http404("unknown agent") from None
        raise


def run_record(**request: Any) -> tuple[Run, bool]:
    """``run_create``; an async run that is new is then published, once its row is committed
    (``BrokerUnavailable`` if the broker refuses it: the run is then recorded as failed)."""
    run, created = run_create(**request)
    if created and run.is_async:  # at once, or when the caller's transaction commits
        transaction.on_commit(lambda: publish_or_fail(run))
    return run, created


def runs_record(requests: list[dict[str, Any]]) -> list[tuple[Run, bool] | Exception]:
    """``run_record`` for requests that arrived together (``runs_recorded``): the runs of those
    without an Idempotency-Key or an end user, their new sessions and threads, in one transaction
    of a few statements (``sessions_open``, ``bulk_create``), then the async ones published; if
    that transaction fails (a session made elsewhere meanwhile, an agent deleted), and for the
    others, each request on its own. One outcome per request: what ``run_record`` returns or raises,
    or ``LimitReached`` for a sync run over its tenant's limit of concurrent runs (nothing recorded)."""
    outcomes: list[tuple[Run, bool] | Exception | None] = [None] * len(requests)
    for i, refused in runs_over_limit(requests).items():
        outcomes[i] = refused
    plain = [
        i
        for i, request in enumerate(requests)
        if outcomes[i] is None and not request.get("idempotency_key") and not request.get("user_id")
    ]
    if len(plain) > 1 and connection.features.can_return_rows_from_bulk_insert:
        try:
            for i, outcome in zip(plain, _record_together([requests[i] for i in plain]), strict=True):
                outcomes[i] = outcome
        except (IntegrityError, LimitReached):
            pass  # on their own, below: each new session is counted against the limit on its own
    for i, request in enumerate(requests):
        if outcomes[i] is None:
            outcomes[i] = _outcome(partial(run_record, **request))
    return outcomes  # type: ignore[return-value] - each filled above


def _record_together(requests: list[dict[str, Any]]) -> list[tuple[Run, bool] | Exception]:
    outcomes: list[tuple[Run, bool] | Exception | None] = [None] * len(requests)
    agents: dict[int, Agent] = {}
    for i, request in enumerate(requests):
        try:
            agents[i] = agent_get(tenant=request["tenant"], name=request["agent_name"])
        except Http404 as exc:
            outcomes[i] = exc
    by_tenant: dict[int, list[int]] = {}
    for i in agents:
        by_tenant.setdefault(requests[i]["tenant"].pk, []).append(i)
    with transaction.atomic():
        sessions = {}
        for indexes in by_tenant.values():
            tenant = requests[indexes[0]]["tenant"]
            opened = sessions_open(tenant=tenant, session_ids=[requests[i].get("session_id") for i in indexes])
            sessions.update(zip(indexes, opened, strict=True))
        runs = Run.objects.bulk_create([_new_run(requests[i], agents[i], sessions[i]) for i in agents])
    for i, run in zip(agents, runs, strict=True):
        outcomes[i] = _outcome(partial(_published, run))
    return outcomes  # type: ignore[return-value] - each filled above


def _new_run(request: dict[str, Any], agent: Agent, session: Session) -> Run:
    """The unsaved Run of a ``run_create`` request without an Idempotency-Key or an end user."""
    fields = {k: v for k, v in request.items() if k not in ("agent_name", "session_id", "user_id", "idempotency_key")}
    return Run(agent=agent, session=session, **fields)


def _published(run: Run) -> tuple[Run, bool]:
    if run.is_async:
        publish_or_fail(run)
    return run, True


def _outcome(call: Callable[[], tuple[Run, bool]]) -> tuple[Run, bool] | Exception:
    try:
        return call()
    except Exception as exc:  # this request's, raised to it by runs_recorded
        return exc


#: ``await runs_recorded(request)``: ``run_record`` for one request, with the others that arrive
#: meanwhile in this process (``akplatform.together``).
runs_recorded: Together[dict[str, Any], tuple[Run, bool]] = Together(runs_record)


async def run_start(
    *, wait: float | None = None, listener: asyncio.Queue[Event] | None = None, **request: Any
) -> tuple[Run, asyncio.Task[Step] | None]:
    """Record a sync run and start executing it in this process, on its event loop.

    Returns the run and the task executing it; no task when an earlier request with the same
    Idempotency-Key made the run (nothing runs again). The task is the process's, not the
    request's: a client that goes away does not stop the run, which ends and is recorded.
    ``request``: what ``run_create`` takes; ``wait``: how long to wait for a busy session (``0``:
    not at all; ``None``: the setting); ``listener``: gets the run's events as they come.
    """
    worker, now = web_worker_name(), timezone.now()
    started = {"status": Run.Status.RUNNING, "attempts": 1, "worker": worker, "started_at": now, "heartbeat_at": now}
    run, created = await runs_recorded({**request, **started})
    if not created:
        return run, None
    task = asyncio.get_running_loop().create_task(execute_claimed(run, worker=worker, wait=wait, listener=listener))
    _executing.add(task)
    task.add_done_callback(_executed)
    return run, task


_executing: set[asyncio.Task[Step]] = set()


def _executed(task: asyncio.Task[Step]) -> None:
    _executing.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: its request (if still there) answered it


async def run_sync(*, wait: float | None = None, **request: Any) -> tuple[Run, bool]:
    """Run a message now, in this process; return the ended run and whether it is new (False:
    an earlier request with the same Idempotency-Key made it; nothing ran).

    What stops the run is recorded on it and raised: the store's errors (``SessionBusy``,
    ``StoreUnavailable``, ...), ``RunCancelled``, ``RunTimedOut``, and ``RunFailed`` when the
    adapter raised; the session is left as it was. If the caller is cancelled (its client went
    away), the run goes on to its end.
    """
    run, task = await run_start(wait=wait, **request)
    if task is not None:
        await asyncio.shield(task)
    return run, task is not None


def run_enqueue(*, webhook_url: str = "", **request: Any) -> tuple[Run, bool]:
    """Record a queued run and hand it to a worker once the row is committed.

    ``request``: what ``run_create`` takes. Returns the run and whether it is new (False: an
    earlier request with the same key made it). Raises ``BrokerUnavailable`` (the run is then
    recorded as failed).
    """
    return run_record(**request, **queued_fields(webhook_url=webhook_url))


def queued_fields(*, webhook_url: str = "") -> dict[str, Any]:
    """What a ``run_create`` request adds for an async run (``run_enqueue``)."""
    webhook_status = Run.Webhook.PENDING if webhook_url else Run.Webhook.NONE
    return {
        "is_async": True,
        "enqueued_at": timezone.now(),
        "webhook_url": webhook_url,
        "webhook_status": webhook_status,
    }


@sensitive_variables("value")
def secret_set(*, tenant: Tenant, name: str, value: str) -> Secret:
    """Create the tenant's secret ``name``, or rotate it (a new value, encrypted anew) if it
    exists; returns the row. ``ValueError`` for a name that is not letters, digits, ``_.-`` (up
    to 63), or a value that is not a non-empty string of at most 8 KB (that message does not
    quote it), ``LimitReached`` for a new name over the tenant's limit of secrets."""
    if not isinstance(name, str) or not re.fullmatch(SECRET_NAME_PATTERN, name):
        raise ValueError(f"Not a secret name: {name!r}; use letters, digits, '_', '.', '-' (up to 63).")
    secrets_limit_check(tenant=tenant, name=name)
    ciphertext = secret_encrypt(secret_value_check(value))
    secret, _ = Secret.objects.update_or_create(tenant=tenant, name=name, defaults={"ciphertext": ciphertext})
    return secret


def secret_delete(*, tenant: Tenant, name: str) -> bool:
    """Delete the tenant's secret ``name``; False if it had none of that name. Raises ``InUse``
    naming the tenant's agents whose configs name it."""
    if not Secret.objects.filter(tenant=tenant, name=name).exists():
        return False
    users = agents_using_secret(tenant=tenant, name=name)
    if users:
        raise InUse(f"agents use the secret {name!r}: change their configs first", users)
    deleted, _ = Secret.objects.filter(tenant=tenant, name=name).delete()
    return deleted > 0


def secret_reencrypt_all() -> int:
    """Encrypt every secret anew under the current ``AK_SECRETS_KEY`` (after a key rotation, so
    that the old key may leave ``AK_SECRETS_OLD_KEYS``); returns how many rows were rewritten.
    ``updated_at`` is left alone: the values did not change."""
    count = 0
    for pk, ciphertext in Secret.objects.values_list("pk", "ciphertext").iterator():
        count += Secret.objects.filter(pk=pk, ciphertext=ciphertext).update(ciphertext=secret_reencrypt(ciphertext))
    return count


__all__ = [
    "AgentExists",
    "AgentInvalid",
    "BuiltinAgent",
    "IdempotencyConflict",
    "InUse",
    "agent_create",
    "agent_delete",
    "agent_ensure_builtins",
    "agent_get",
    "agent_update",
    "run_cancel",
    "run_create",
    "run_enqueue",
    "run_record",
    "run_retry",
    "run_start",
    "run_sync",
    "runs_record",
    "runs_recorded",
    "secret_delete",
    "secret_reencrypt_all",
    "secret_set",
]
