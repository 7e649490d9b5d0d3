"""What a caller asks of a run (``RunRequest``), and the one service that submits it.

submitted = await run_submit(RunRequest(agent="echo", message="hi"), tenant=tenant)
submitted.run.result                       # sync: the ended run
RunRequest(..., mode="queued")             # recorded, then published once committed
RunRequest(..., mode="stream")             # ``submitted.events``: its events as they come
submitted.run.status == "paused"           # it waits for a person: ``runs.resume``
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any, Literal

from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils import timezone

from agents_app import limits
from agents_app.budgets.check import agents_with_budgets, budget_check
from agents_app.errors import SessionPaused
from agents_app.models import Agent, Run
from agents_app.runs import dispatch
from agents_app.runs.cancel import run_cancel, run_cancel_paused
from agents_app.runs.events import ENDS, STOPS
from agents_app.runs.execute import execute_claimed, web_worker_name
from agents_app.runs.publish_new import publish_or_fail
from agents_app.selectors import run_find_idempotent
from agents_app.services import agent_get
from agents_app.usage.record import model_of
from infra.io_threads import db
from infra.limits import Slot
from sessions_app.models import Tenant
from sessions_app.services import session_open
from sessions_app.stores.events import Event

Mode = Literal["sync", "stream", "queued"]


@dataclass(frozen=True)
class RunRequest:
    """A run as a caller asks for it: what to run, where, and how to answer.

    ``mode``: ``sync`` answers the ended run, ``stream`` its events as they come, ``queued`` the
    run at once, for a worker to execute. ``on_busy``: ``reject`` turns a sync or streamed run
    away (``SessionBusy``) while another run holds its session. ``idempotency_key``: the same key
    with the same ``request_hash`` answers the run the first request made (nothing runs again);
    with another hash, ``IdempotencyConflict``. ``webhook_url``: a queued run's end is POSTed
    there. ``cancel_on_disconnect``: a stream whose client goes away cancels its run.
    ``on_paused``: ``cancel`` cancels the session's paused run first; ``reject`` (the default)
    refuses the run (``SessionPaused``) while the session has one."""

    agent: str
    message: str
    session_id: str | None = None
    user_id: str | None = None
    mode: Mode = "sync"
    on_busy: Literal["enqueue", "reject"] = "enqueue"
    idempotency_key: str | None = None
    request_hash: str = ""
    webhook_url: str = ""
    cancel_on_disconnect: bool = False
    on_paused: Literal["reject", "cancel"] = "reject"


@dataclass(frozen=True)
class Submitted:
    """A submitted run: ``created`` False when an earlier request with the same Idempotency-Key
    made it (nothing ran). A new streamed run's ``events``, its first one included, and the
    ``task`` executing it, which raises what stopped it once it ended."""

    run: Run
    created: bool
    events: AsyncIterator[Event] | None = None
    task: asyncio.Task[object] | None = None


async def run_submit(request: RunRequest, *, tenant: Tenant) -> Submitted:
    """Record the run (``run_record``), then: a queued one is answered at once; a sync one is
    executed in this process and answered once it ended; a streamed one is answered with its
    events, holding one of the tenant's event streams. A sync run raises what stopped it (the
    store's errors, ``RunCancelled``, ``RunTimedOut``, ``SessionExpired``, ``RunFailed``); a
    streamed one, when it ended before its first event. A caller that goes away does not stop the
    run (unless a stream asked for that)."""
    slot = await limits.stream_slot(tenant=tenant) if request.mode == "stream" else None
    try:
        run, created = await db(run_record, request, tenant=tenant)
    except BaseException:
        await limits.release(slot)
        raise
    if not created or request.mode == "queued":
        await limits.release(slot)
        return Submitted(run, created)
    wait = 0 if request.on_busy == "reject" else None
    return await run_start(
        run, stream=request.mode == "stream", slot=slot, wait=wait, cancel_on_disconnect=request.cancel_on_disconnect
    )


async def run_start(
    run: Run, *, stream: bool, slot: Slot | None, wait: float | None, cancel_on_disconnect: bool
) -> Submitted:
    """Execute a run this process holds (``running``): a sync one is answered once it ended or
    paused (raising what stopped it); a streamed one with its events, holding ``slot`` (released
    when they end)."""
    try:
        listener: asyncio.Queue[Event] | None = asyncio.Queue() if stream else None
        task = _start(execute_claimed(run, worker=run.worker, wait=wait, listener=listener))
        if listener is None:
            await asyncio.shield(task)
            return Submitted(run, True)
        first = await _next_event(listener, task)
        if first is None or (first.kind in ENDS and first.kind != "done"):
            await asyncio.shield(task)  # ended before it started (store down, busy): raised as is
    except BaseException:
        await limits.release(slot)
        raise
    events = _streamed(first, run, task, listener, cancel_on_disconnect=cancel_on_disconnect)
    return Submitted(run, True, limits.holding(slot, events), task)


def run_record(request: RunRequest, *, tenant: Tenant) -> tuple[Run, bool]:
    """The run's row, on the session it names (made if new): ``queued`` and published once
    committed (``BrokerUnavailable`` if the broker refuses it: the run is then failed) or, when its
    tenant has all its runs in flight, ``held`` until its turn (``runs.dispatch``); or
    ``running``, held by this process, for a sync or streamed run. Returns the run and whether it
    is new (False: an earlier request with the same Idempotency-Key made it). Raises ``Http404``
    (unknown agent), ``IdempotencyConflict``, ``LimitReached`` (sessions, concurrent runs),
    ``BudgetExceeded`` (a budget of the tenant or the agent is used up) and ``SessionPaused`` (the
    session has a paused run, and ``on_paused`` is not ``cancel``)."""
    earlier = run_find_idempotent(
        tenant=tenant, idempotency_key=request.idempotency_key, request_hash=request.request_hash
    )
    if earlier is not None:
        return earlier, False
    agent = agent_get(tenant=tenant, name=request.agent, rows=agents_with_budgets())
    if agent.budgeted:
        budget_check(tenant_id=tenant.pk, agent=agent.name)
    if request.session_id is not None and (request.mode == "queued" or request.on_paused == "cancel"):
        _paused_run_check(request, tenant=tenant)
    fields = {
        "tenant": tenant,
        "agent": agent,
        "model": model_of(agent.config),
        "message": request.message,
        "idempotency_key": request.idempotency_key,
        "request_hash": request.request_hash,
        **_mode_fields(request, tenant),
    }
    # A new session: its thread, its index row and the run, all or nothing. With a key, a savepoint
    # in a caller's transaction: a duplicate key leaves it usable.
    alone = request.session_id is not None and request.idempotency_key is None
    try:
        with contextlib.nullcontext() if alone else transaction.atomic():
            session = session_open(tenant=tenant, session_id=request.session_id, user_id=request.user_id)
            run = Run.objects.create(session=session, **fields)
    except IntegrityError:
        existing = run_find_idempotent(
            tenant=tenant, idempotency_key=request.idempotency_key, request_hash=request.request_hash
        )
        if existing is not None:  # the same key, sent twice at once
            return existing, False
        if not Agent.objects.filter(pk=agent.pk).exists():  # deleted in another process meanwhile
            raise Http404("unknown agent") from None
        raise
    if run.is_async:  # at once, or when the caller's transaction commits; or once its tenant's turn comes
        dispatch.queued_on_commit(run, lambda: publish_or_fail(run))
    return run, True


def _paused_run_check(request: RunRequest, *, tenant: Tenant) -> None:
    """Refuse a run on a session with a paused run (``SessionPaused``), or cancel that run first
    (``on_paused: "cancel"``). A queued run is checked here, to be answered 409 now rather than
    fail later; a sync or streamed one (without ``on_paused: "cancel"``) is refused by the runner,
    which finds the session's pause marker under the lock with no query of its own (its row is
    then withdrawn), as is any run that reaches the session after a pause made since this check."""
    paused = Run.objects.filter(tenant=tenant, session__session_id=request.session_id, status=Run.Status.PAUSED)
    for run in paused.only("pk", "webhook_url", "status"):
        if request.on_paused != "cancel":
            raise SessionPaused(str(run.pk))
        run_cancel_paused(run=run, error="cancelled: a new run on its session asked for it")


def _mode_fields(request: RunRequest, tenant: Tenant) -> dict[str, object]:
    now = timezone.now()
    if request.mode == "queued":
        webhook_status = Run.Webhook.PENDING if request.webhook_url else Run.Webhook.NONE
        return {
            "is_async": True,
            "enqueued_at": now,
            "held": dispatch.held_for(tenant),
            "webhook_url": request.webhook_url,
            "webhook_status": webhook_status,
        }
    limits.concurrent_runs_check(tenant=tenant)
    return {
        "status": Run.Status.RUNNING,
        "attempts": 1,
        "worker": web_worker_name(),
        "started_at": now,
        "heartbeat_at": now,
    }


_executing: set[asyncio.Task[object]] = set()


def _start(work: Coroutine[Any, Any, object]) -> asyncio.Task[object]:
    """A task of the process, kept until it ends; its exception is its caller's to answer."""
    task = asyncio.get_running_loop().create_task(work)
    _executing.add(task)
    task.add_done_callback(_executed)
    return task


def _executed(task: asyncio.Task[object]) -> None:
    _executing.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: its caller (if still there) answered it


async def _next_event(listener: asyncio.Queue[Event], task: asyncio.Task[object]) -> Event | None:
    """The run's next event; None when its task ended with no event left (the sweeper took the
    run back, or recording its end failed)."""
    if listener.empty():
        getter = asyncio.ensure_future(listener.get())
        await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
        if getter.done():
            return getter.result()
        getter.cancel()
    return None if listener.empty() else listener.get_nowait()


async def _streamed(
    event: Event | None,
    run: Run,
    task: asyncio.Task[object],
    listener: asyncio.Queue[Event],
    *,
    cancel_on_disconnect: bool,
) -> AsyncIterator[Event]:
    """A run's events, its first one given, until its end (or its task's); if the client goes
    away the run goes on, unless it asked to be cancelled then."""
    try:
        while event is not None:
            yield event
            if event.kind in STOPS:
                return
            event = await _next_event(listener, task)
    finally:
        if cancel_on_disconnect and not task.done():
            await db(run_cancel, run=run)
