"""Queueing a session's compaction, after a run committed more than its agent's ``after`` allows.

At most one compaction per session is queued or under way at a time: a mark in the default cache
(shared by every process when it is Redis) is added when it is queued and removed when it ends
(or lapses, should its worker die). A cache that fails does not stop it: two compactions of one
session at once are harmless (the second finds the first's summary and commits nothing, or covers
more). The task is sent by name; a broker that is down leaves the session uncompacted until the
next run queues it again.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from celery import current_app
from django.conf import settings
from django.core.cache import cache

from agents_app.compaction.config import compaction_of

logger = logging.getLogger(__name__)

COMPACT_TASK: Final = "agents_app.tasks.compact_session"


def compaction_due(config: Any, uncovered: int) -> bool:
    """Whether an agent with ``config`` asks for a compaction of a session whose latest summary
    leaves ``uncovered`` entries out."""
    compaction = compaction_of(config)
    return compaction is not None and uncovered > compaction.after


def _mark(session_pk: int) -> str:
    return f"ak:compaction:{session_pk}"


def compaction_queue(*, session_pk: int, agent_pk: int) -> bool:
    """Queue the compaction of the session (index row ``session_pk``) as agent ``agent_pk`` asks,
    unless one is queued or under way; True when queued."""
    try:
        if not cache.add(_mark(session_pk), 1, timeout=settings.AK_RUN["TIME_LIMIT"] + 60):
            return False
    except Exception:  # the cache is down: queued anyway
        logger.warning("session %s: compaction queued without its mark (cache unavailable)", session_pk)
    try:
        current_app.send_task(COMPACT_TASK, (session_pk, agent_pk))
    except Exception as exc:  # the broker is down: the next run queues it again
        logger.warning("session %s: compaction not queued: %s", session_pk, type(exc).__name__)
        compaction_done(session_pk=session_pk)
        return False
    return True


def compaction_done(*, session_pk: int) -> None:
    """The session's compaction ended: another may be queued."""
    try:
        cache.delete(_mark(session_pk))
    except Exception:
        logger.warning("session %s: its compaction mark lapses by itself (cache unavailable)", session_pk)
