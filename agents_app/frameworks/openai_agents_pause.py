"""A paused ``openai_agents`` run: tool calls that wait for a person's approval.

A tool listed as ``{"name": ..., "needs_approval": true}`` is given to the SDK with its
``needs_approval``: when the model calls it, the SDK stops the run before the tool runs, lists the
calls in ``result.interruptions``, and ``result.to_state()`` is the run so far (a ``RunState``).
The adapter keeps that state as JSON (``RunState.to_json``) in the entry agent's own state under
``PAUSED``, with what the run's session held and the reply's text so far (``PausedRun``), and
returns a ``Pause`` of kind ``approval``: one request per call, its ``id`` the call's id.

``resume`` reads it back (``RunState.from_json``, given the run's ``CallContext`` again: the
context is not kept), approves or rejects each call (``RunState.approve``, ``RunState.reject``)
and runs on from there, in whatever process resumes it: an approved tool runs then, once; a
rejected one does not run, and the model gets ``DENIED`` (and the person's message) as its result.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from agents_app.frameworks.base import ApprovalRequest, Pause, Resume
from agents_app.frameworks.model import ModelError

#: The key of the entry agent's own state that holds a paused run.
PAUSED: Final = "paused_run"
#: The most a paused run may take in the agent's state, as JSON (its ``RunState`` holds the
#: window the model was sent): over it, the run fails rather than pause.
MAX_PAUSED_BYTES: Final = 256 * 1024
#: What the model gets as the result of a call a person did not approve (then their message).
DENIED: Final = "Tool execution was not approved."
FORMAT: Final = "ak.openai_agents.paused/1"


@dataclass(frozen=True)
class PausedRun:
    """What a paused run needs to go on, as kept in the agent's state (JSON)."""

    #: ``RunState.to_json()``: the SDK's own record of the run, its calls waiting.
    run_state: dict[str, Any]
    #: The agent the run started with (the SDK rebuilds the state from it and its handoffs).
    start: str
    #: What the run's session held (``WindowSession.added``): committed when the run completes.
    added: list[dict[str, Any]]
    #: The reply's text so far (what the model said before the calls).
    text: str

    def as_json(self) -> dict[str, Any]:
        """The JSON kept under ``PAUSED``; raises ``ModelError`` when it is over ``MAX_PAUSED_BYTES``."""
        document = {
            "format": FORMAT,
            "run_state": self.run_state,
            "start": self.start,
            "added": self.added,
            "text": self.text,
        }
        size = len(orjson.dumps(document))
        if size > MAX_PAUSED_BYTES:
            raise ModelError(
                f"the paused run is {size} bytes, over the limit of {MAX_PAUSED_BYTES} (MAX_PAUSED_BYTES):"
                " lower the agent's history"
            )
        return document

    @classmethod
    def read(cls, stored: Any) -> PausedRun:
        """The paused run kept in the agent's state; raises ``ModelError`` when there is none."""
        if not isinstance(stored, dict) or stored.get("format") != FORMAT:
            raise ModelError("the agent has no paused run to resume (its state was removed or replaced)")
        try:
            return cls(dict(stored["run_state"]), str(stored["start"]), list(stored["added"]), str(stored["text"]))
        except (KeyError, TypeError, ValueError):
            raise ModelError("the agent's paused run cannot be read back") from None


def requests_of(interruptions: Sequence[Any]) -> tuple[ApprovalRequest, ...]:
    """The approval requests of the SDK's ``ToolApprovalItem``\\ s: one per call, by its call id."""
    return tuple(
        ApprovalRequest(id=request_id(item, i), tool=str(item.name or ""), arguments=arguments_of(item.arguments))
        for i, item in enumerate(interruptions)
    )


def request_id(item: Any, index: int) -> str:
    """The call's id (unique within one model answer); its place when the call has none."""
    return str(item.call_id) if item.call_id else f"call_{index}"


def arguments_of(raw: str | None) -> dict[str, Any]:
    """A call's arguments as an object: the model's JSON, or ``{"arguments": text}`` when it sent
    something else."""
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {"arguments": raw}
    return parsed if isinstance(parsed, dict) else {"arguments": parsed}


def pause_of(interruptions: Sequence[Any]) -> Pause:
    return Pause(kind="approval", requests=requests_of(interruptions))


def denial(message: str | None) -> str:
    """What the model reads as the result of a call the person did not approve."""
    return f"{DENIED} The person said: {message}" if message else DENIED


def decide(state: Any, answer: Resume) -> None:
    """Approve or reject each call ``state`` waits for, as ``answer`` says. A call it says nothing
    of stays waiting: the run that goes on pauses again for it."""
    for i, item in enumerate(state.get_interruptions()):
        decision = answer.decisions.get(request_id(item, i))
        if decision is None:
            continue
        if decision.approve:
            state.approve(item)
        else:
            state.reject(item, rejection_message=denial(decision.message))


async def restore(start: Any, paused: PausedRun, context: Any) -> Any:
    """The ``RunState`` of ``paused``, its agents those of the team ``start`` leads, its context
    ``context`` (the run's ``CallContext``). Raises ``ModelError`` when it does not read back (the
    agent's tools or handoffs changed meanwhile, or the SDK changed its format)."""
    from agents import RunState

    try:
        return await RunState.from_json(start, paused.run_state, context_override=context)
    except Exception as exc:
        raise ModelError(f"the paused run cannot go on: {type(exc).__name__}: {str(exc)[:300]}") from None


def state_json(result: Any) -> dict[str, Any]:
    """The run ``result`` stopped at, as the SDK's JSON (without its context: ``restore`` gives it)."""
    return result.to_state().to_json(context_serializer=lambda context: {})
