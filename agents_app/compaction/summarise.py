"""A session's compaction: its older entries summarised by the tenant's summariser agent.

``session_compact`` is the service of a Celery task (``agents_app.tasks.compact_session``): it
reads what the latest summary does not cover up to the ``keep`` latest entries (paged, outside the
session's lock), asks the summariser agent for a summary of it (the previous summary with it), then
takes the session's lock briefly and commits the summary (an entry of kind ``summary``, appended)
with its pointer. The lock is never held while the model answers; runs that commit meanwhile are
fine: the summary covers what was read, and the entries after it stay in the window. Whatever
fails (the summariser, the store, an agent gone) is logged and leaves the session as it was: its
runs keep their window, and the next run that commits queues a compaction again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from django.conf import settings
from django.utils import timezone

from agents_app.compaction.config import Compaction, compaction_of
from agents_app.compaction.window import COMPACTION_SCOPE, Pointer, latest_summary, pointer_state, uncovered
from agents_app.frameworks import Pause, Reply, framework_loaded, get_framework
from agents_app.models import Agent, Run
from agents_app.usage.record import RunFacts, model_of, usage_add
from infra.io_threads import blocking, db
from sessions_app.core import SessionView
from sessions_app.models import Session
from sessions_app.selectors import session_key
from sessions_app.services import session_record_commit
from sessions_app.stores import get_store
from sessions_app.stores.base import SUMMARY, Message, SessionKey, SessionStore, Snapshot, StoreError

logger = logging.getLogger(__name__)

#: The most characters of one entry the summariser is shown.
MAX_ENTRY_CHARS: Final = 4000
_PAGE: Final = 100

INSTRUCTIONS: Final = (
    "Summarise the conversation below for the assistant that goes on with it. Keep every fact, "
    "name, number, decision and open question it will need; leave out greetings and repetition. "
    "Answer with the summary only."
)


@dataclass(frozen=True)
class Work:
    """What one compaction needs, read from the database."""

    session: Session
    key: SessionKey
    compaction: Compaction
    summariser: Agent


async def session_compact(*, session_pk: int, agent_pk: int, store: SessionStore | None = None) -> str:
    """Compact the session (index row ``session_pk``) as its agent ``agent_pk``'s config asks, if it
    is due. Returns what happened: ``compacted``, ``not_due``, ``skipped`` (nothing to do: an agent
    or the session gone, a summary committed meanwhile) or ``failed`` (logged)."""
    work = await db(_work, session_pk, agent_pk)
    if work is None:
        return "skipped"
    store = store or get_store()
    try:
        return await _compact(work, store)
    except Exception as exc:  # the summariser's failure, or the store's: the session stays as it was
        logger.warning(
            "session %s: compaction by %r failed: %s: %s",
            work.key.session_id,
            work.compaction.agent,
            type(exc).__name__,
            str(exc)[:300],
        )
        return "failed"


def _work(session_pk: int, agent_pk: int) -> Work | None:
    session = Session.objects.select_related("tenant").filter(pk=session_pk).first()
    if session is None:
        return None
    agent = Agent.objects.filter(pk=agent_pk, tenant=session.tenant).first()
    compaction = compaction_of(agent.config) if agent is not None else None
    if compaction is None:
        return None
    summariser = Agent.objects.filter(tenant=session.tenant, name=compaction.agent).first()
    if summariser is None:
        logger.warning("session %s: no agent %r to compact it", session.session_id, compaction.agent)
        return None
    return Work(session, session_key(session), compaction, summariser)


async def _compact(work: Work, store: SessionStore) -> str:
    snapshot = await blocking(store.load, work.key, scopes=(COMPACTION_SCOPE,), window=0)
    previous = latest_summary(snapshot)
    if uncovered(snapshot.total, previous) <= work.compaction.after:
        return "not_due"
    start, end = (previous.covers if previous else 0), snapshot.total - work.compaction.keep
    entries = await blocking(_entries, store, work.key, start, end)
    prompt = summary_prompt(previous, entries)
    started = timezone.now()
    text, usage = await _ask(work, prompt)
    await db(_count_usage, work, started=started, usage=usage)
    committed = await blocking(_commit, store, work, Pointer(text, 0, end, work.summariser.name), start)
    if committed is None:
        return "skipped"
    await db(session_record_commit, session=work.session, total=committed)
    return "compacted"


def _count_usage(work: Work, *, started: datetime, usage: dict[str, int] | None) -> None:
    """The summariser's answer counted in the tenant's usage: one run of the summariser agent,
    on the session, with its tokens (``agents_app.usage``)."""
    summariser, session = work.summariser, work.session
    facts = RunFacts(
        session.tenant_id, summariser.name, model_of(summariser.config), session.session_id, started, started
    )
    usage_add(facts, changes={"finished_at": timezone.now(), "status": Run.Status.SUCCEEDED, "usage": usage})


def _entries(store: SessionStore, key: SessionKey, start: int, end: int) -> list[Message]:
    """The history's entries numbered ``start`` to ``end`` (excluded), summaries left out."""
    found: list[Message] = []
    while start < end:
        page = store.history(key, start=start, limit=min(_PAGE, end - start))
        if not page:
            break
        found.extend(m for m in page if m.kind != SUMMARY)
        start += len(page)
    return found


def summary_prompt(previous: Pointer | None, entries: list[Message]) -> str:
    """What the summariser is asked: the instructions, the previous summary, the entries a line each."""
    lines = [INSTRUCTIONS, ""]
    if previous is not None:
        lines += ["Summary of what came before:", previous.content, ""]
    lines.append("Conversation:")
    for entry in entries:
        who = entry.role if entry.is_text else f"{entry.role} ({entry.kind})"
        lines.append(f"{who}: {entry.content[:MAX_ENTRY_CHARS]}")
    return "\n".join(lines)


async def _ask(work: Work, prompt: str) -> tuple[str, dict[str, int] | None]:
    """The summariser's answer to ``prompt``, run as a one-off (no history, its writes dropped)."""
    framework = get_framework(work.summariser.framework)
    framework.check_tenant(work.summariser.config, tenant=work.key.tenant)
    framework.check_runnable(work.summariser.config)
    await framework_loaded(framework)
    empty = Snapshot(version=0, messages=[], offset=0, total=0, role_counts={}, state={})
    view = SessionView(empty, work.summariser.name, key=work.key)
    answer = await asyncio.wait_for(framework.run(work.summariser, view, prompt), timeout=settings.AK_RUN["TIME_LIMIT"])
    if isinstance(answer, Pause):
        raise RuntimeError("the summariser paused for a person")
    text, usage = (answer.text, answer.usage) if isinstance(answer, Reply) else (answer, None)
    if not text.strip():
        raise RuntimeError("the summariser answered nothing")
    return text.strip(), usage.as_dict() if usage is not None else None


def _commit(store: SessionStore, work: Work, pointer: Pointer, start: int) -> int | None:
    """Append the summary and its pointer under the session's lock, held briefly; the history's
    new length, or None when a summary covering as much was committed meanwhile, or the session
    is gone. Raises the store's errors (a busy session among them)."""
    lock, snapshot = store.acquire_and_load(
        work.key,
        lease=settings.AK_SESSION["LOCK_LEASE"],
        wait=settings.AK_SESSION["LOCK_WAIT"],
        scopes=(COMPACTION_SCOPE,),
        window=0,
    )
    try:
        latest = latest_summary(snapshot)
        if not snapshot.exists or (latest is not None and latest.covers >= pointer.covers):
            return None
        pointer = Pointer(pointer.content, snapshot.total, pointer.covers, pointer.agent)
        data = {"from": start, "covers": pointer.covers, "agent": pointer.agent}
        summary = Message("system", pointer.content, pointer.agent, time.time(), SUMMARY, data)
        result = store.commit_and_release(
            lock, expected_version=snapshot.version, append=[summary], state={COMPACTION_SCOPE: pointer_state(pointer)}
        )
        return result.total
    finally:
        with contextlib.suppress(StoreError):
            lock.release()
