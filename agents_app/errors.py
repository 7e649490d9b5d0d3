"""What a run can end in besides a reply: the errors the services raise and the API answers."""

from __future__ import annotations

from typing import Any


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
