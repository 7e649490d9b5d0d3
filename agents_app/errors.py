"""What a run can end in besides a reply: the errors the services raise and the API answers."""

from __future__ import annotations

from typing import Any


class RunStopped(Exception):
    """The run was stopped before it committed: nothing of it reached the session."""


class RunCancelled(RunStopped):
    """A cancel stopped the run (409 ``run_cancelled`` for a sync run)."""


class RunTimedOut(RunStopped):
    """The adapter took longer than ``AK_RUN__TIME_LIMIT`` (504 ``run_timeout``)."""


class RunFailed(Exception):
    """The agent's adapter raised: the run is recorded as failed (502 ``agent_failed``)."""

    def __init__(self, run: Any) -> None:
        super().__init__(run.error or "the run failed")
        self.run = run


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with another request (409)."""
