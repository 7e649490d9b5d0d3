"""What a run can end in besides a reply: the errors the services raise and the API answers."""

from __future__ import annotations

import logging
from typing import Any

from sessions_app.stores.base import (
    LockLost,
    PayloadTooLarge,
    SessionBusy,
    StoreError,
    StoreUnavailable,
    VersionConflict,
)

logger = logging.getLogger(__name__)


class RunStopped(Exception):
    """The run was stopped before it committed: nothing of it reached the session."""


class RunCancelled(RunStopped):
    """A cancel stopped the run (409 ``run_cancelled`` for a sync run)."""


class RunTimedOut(RunStopped):
    """The adapter took longer than ``AK_RUN__TIME_LIMIT`` (504 ``run_timeout``)."""


class SessionExpired(RunStopped):
    """The session's history is no longer in the store while its index row counts messages: the
    store expired it, or an in-memory store was restarted. The run did not start (409
    ``session_expired``); the index now says the session is empty, so the next run on it starts
    the conversation over."""

    def __init__(self, session_id: str, count: int) -> None:
        super().__init__(
            f"the history of session {session_id!r} ({count} messages) is no longer in the session store (it"
            " expired there, or the store was restarted); nothing was run, and the session now starts over empty:"
            " send the message again to go on without that history"
        )
        self.session_id, self.count = session_id, count


class SessionPaused(RunStopped):
    """A new run on a session that has a paused run (409 ``run_paused``, with its ``run_id``)."""

    def __init__(self, run_id: str) -> None:
        super().__init__(
            f"the session has a paused run ({run_id}): resume it, cancel it, or send the message with"
            ' "on_paused": "cancel"'
        )
        self.run_id = run_id


class RunNotPaused(Exception):
    """A resume of a run that is not paused (409 ``run_not_paused``)."""

    def __init__(self, run_id: str, status: str) -> None:
        super().__init__(f"the run is {status}, not paused: there is nothing to resume")
        self.run_id = run_id


class ResumeInvalid(ValueError):
    """A resume's answer does not fit what the run waits for (400): ``fields`` names each bad field."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{field}: {' '.join(messages)}" for field, messages in fields.items()))
        self.fields = fields


class RunFailed(Exception):
    """The agent's adapter raised: the run is recorded as failed (502 ``agent_failed``)."""

    def __init__(self, run: Any) -> None:
        super().__init__(run.error or "the run failed")
        self.run = run


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with another request (409)."""


class AgentInvalid(ValueError):
    """An agent as it would be saved is not valid (400): ``fields`` names each bad field of the
    request (``framework``, ``config``, ``config.model``, ``config.tools[1]``) with its messages."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{field}: {' '.join(messages)}" for field, messages in fields.items()))
        self.fields = fields


class InUse(Exception):
    """Other agents use what was to be deleted or changed (409): ``agents`` names them."""

    def __init__(self, message: str, agents: list[str]) -> None:
        super().__init__(message)
        self.agents = agents


class BuiltinAgent(Exception):
    """A built-in agent (``echo``) is the same for every tenant: it is not changed or deleted (409)."""


class BrokerUnavailable(Exception):
    """The task broker did not take a task: nothing was queued (503 ``broker_unavailable``)."""


def error_body(code: str, detail: Any, fields: Any = None) -> dict[str, Any]:
    """The API's one error shape: ``{"code", "detail", "fields"?}``."""
    body: dict[str, Any] = {"code": code, "detail": detail}
    if fields is not None:
        body["fields"] = fields
    return body


#: (error, status, code, detail): ``None`` detail is the exception's own message.
_ERRORS: list[tuple[type[Exception], int, str, str | None]] = [
    (BrokerUnavailable, 503, "broker_unavailable", "The task broker is unavailable; nothing was queued."),
    (IdempotencyConflict, 409, "idempotency_conflict", "This Idempotency-Key was used with another request."),
    (RunCancelled, 409, "run_cancelled", "The run was cancelled; nothing was saved."),
    (SessionPaused, 409, "run_paused", None),
    (RunNotPaused, 409, "run_not_paused", None),
    (ResumeInvalid, 400, "invalid", "The answer does not fit what the run waits for."),
    (SessionExpired, 409, "session_expired", None),
    (RunTimedOut, 504, "run_timeout", None),
    (RunFailed, 502, "agent_failed", None),
    (SessionBusy, 409, "session_busy", "The session is busy with another run."),
    (VersionConflict, 409, "session_changed", "The session changed during the run; nothing was saved."),
    (LockLost, 409, "session_changed", "The session changed during the run; nothing was saved."),
    (PayloadTooLarge, 413, "too_large", "The payload is too large to store."),
    (StoreUnavailable, 503, "store_unavailable", "The session store is unavailable; try again."),
    (StoreError, 503, "store_error", "The session store failed; try again."),
]


def run_error(exc: Exception) -> tuple[int, dict[str, Any]] | None:
    """The status and body the API answers a run's or the store's error with; None for others.
    (A streamed run sends the body as its ``error`` event.)"""
    for error_type, status_code, code, detail in _ERRORS:
        if isinstance(exc, error_type):
            body = error_body(code, detail or str(exc))
            if isinstance(exc, RunFailed):
                body["run_id"] = str(exc.run.pk)
            if isinstance(exc, SessionPaused | RunNotPaused):
                body["run_id"] = exc.run_id
            if isinstance(exc, ResumeInvalid):
                body["fields"] = exc.fields
            if isinstance(exc, StoreError) and status_code >= 500:
                logger.warning("store error: %s", exc)
            return status_code, body
    return None
