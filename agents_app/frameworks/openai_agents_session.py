"""The OpenAI Agents SDK's ``Session`` protocol over a run's ``SessionView``: the codec between the
SDK's input items and the platform's history.

The history is the run's window; what the SDK adds is held until the run succeeds, when
``flush()`` hands it to the view as items, committed with the user's message and the reply. A run
that pauses (a tool call waiting for approval) keeps what it held (``added``) with its paused
state, and the run that resumes it starts with it held again.

Both ways, entries map to the SDK's items like this:

============================  ===============================================================
platform entry                SDK input item
============================  ===============================================================
text message (user)           ``{"role": "user", "content": ...}``
text message (assistant)      ``{"type": "message", "role": "assistant", "content": [output_text]}``
``tool_call``                 ``{"type": "function_call", "call_id", "name", "arguments"}``
``tool_result``               ``{"type": "function_call_output", "call_id", "output"}``
``handoff``                   its handoff tool's ``function_call`` and ``function_call_output``
============================  ===============================================================

Calls and results are sent only in pairs (a Chat Completions server refuses a call without its
result): a window that cut one from the other, or another framework's items, are left out. An
assistant's text goes as the SDK's own output message (sent to the server as the same plain
``{"role": "assistant", "content": ...}``): unlike the short form, it reads back from a paused
run's ``RunState`` as it was written.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sessions_app.core import SessionView
from sessions_app.stores.base import HANDOFF, TOOL_CALL, TOOL_RESULT, Message

#: An SDK input item (a ``TResponseInputItem``: a JSON object).
Item = dict[str, Any]


@dataclass(frozen=True)
class HandoffTool:
    """A handoff as the model sees it: the tool ``transfer_to_<agent>`` and what it answers."""

    agent: str
    #: The tool's output when the handoff happened (``Handoff.get_transfer_message``).
    transfer: str


class WindowSession:
    """The SDK's ``agents.memory.Session`` protocol for one run: ``get_items`` gives the window's
    last ``history`` items, then those added during the run; ``add_items`` and ``pop_item`` work
    on the run's buffer only; ``clear_session`` raises (the history is the platform's)."""

    session_settings = None

    def __init__(
        self,
        view: SessionView,
        *,
        history: int,
        handoffs: Mapping[str, HandoffTool],
        first: str,
        added: Sequence[Item] = (),
    ) -> None:
        """``handoffs``: the handoff tools of the run's agents, by tool name; ``first``: the agent
        the run starts with (the one the first items are attributed to); ``added``: what the run
        held when it paused, for the run that resumes it."""
        key = view.key
        self.session_id = f"{key.tenant}/{key.session_id}" if key is not None else "local"
        self._view = view
        self._handoffs = dict(handoffs)
        self._first = first
        self._history = history_items(view.messages, history)
        self._added: list[Item] = copy.deepcopy(list(added))

    @property
    def added(self) -> list[Item]:
        """What the run added and holds until ``flush`` (a copy: JSON, kept when the run pauses)."""
        return copy.deepcopy(self._added)

    async def get_items(self, limit: int | None = None) -> list[Item]:
        """The latest ``limit`` items (all without one), oldest first."""
        items = self._history + self._added
        if limit is not None:
            items = items[-limit:] if limit > 0 else []
        return copy.deepcopy(items)

    async def add_items(self, items: list[Item]) -> None:
        """Hold ``items`` until ``flush``: nothing reaches the store before the run's commit."""
        self._added.extend(copy.deepcopy(list(items)))

    async def pop_item(self) -> Item | None:
        """Take back the latest item this run added; None when it added none (what the history
        held before the run is never removed)."""
        return self._added.pop() if self._added else None

    async def clear_session(self) -> None:
        raise NotImplementedError(
            "a session's history belongs to the platform: DELETE /sessions/<id> removes the session"
        )

    def flush(self) -> None:
        """Append the run's tool calls, tool results and handoffs to the view, in order (call
        once, when the run has succeeded)."""
        for kind, data, content, agent in run_entries(self._added, self._handoffs, self._first):
            self._view.append(kind, data, content=content, agent=agent)
        self._added = []


def history_items(messages: Sequence[Message], limit: int) -> list[Item]:
    """The SDK's input items for the last ``limit`` of ``messages`` (oldest first), in pairs."""
    if limit <= 0:
        return []
    items = [item for message in messages for item in _as_items(message)]
    return _paired(items[-limit:])


def _as_items(message: Message) -> list[Item]:
    data = message.data or {}
    if message.is_text:
        if message.role == "assistant":
            return [_said(message.content)]
        return [{"role": "user", "content": message.content}] if message.role == "user" else []
    call_id = data.get("call_id")
    if not isinstance(call_id, str):
        return []  # another framework's item: nothing the model can be shown as a call
    if message.kind == TOOL_CALL and isinstance(data.get("name"), str):
        return [_call(call_id, data["name"], data.get("arguments", ""))]
    if message.kind == TOOL_RESULT:
        return [_output(call_id, data.get("output", ""))]
    if message.kind == HANDOFF and isinstance(data.get("tool"), str) and isinstance(data.get("to"), str):
        transfer = data.get("output", json.dumps({"assistant": data["to"]}))
        return [_call(call_id, data["tool"], data.get("arguments", "{}")), _output(call_id, transfer)]
    return []


def _said(text: str) -> Item:
    """An assistant's text as the SDK's output message (its ``id``: none the server gave)."""
    content = [{"type": "output_text", "text": text, "annotations": []}]
    return {"type": "message", "id": "ak_history", "role": "assistant", "status": "completed", "content": content}


def _call(call_id: str, name: str, arguments: Any) -> Item:
    arguments = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}


def _output(call_id: str, output: Any) -> Item:
    output = output if isinstance(output, str | list) else json.dumps(output)
    return {"type": "function_call_output", "call_id": call_id, "output": output}


def _paired(items: list[Item]) -> list[Item]:
    """``items`` without the calls whose result is not among them, and the other way round."""
    calls = {i["call_id"] for i in items if i.get("type") == "function_call"}
    outputs = {i["call_id"] for i in items if i.get("type") == "function_call_output"}
    return [i for i in items if "call_id" not in i or i["call_id"] in calls & outputs]


def run_entries(
    items: Sequence[Item], handoffs: Mapping[str, HandoffTool], first: str
) -> list[tuple[str, dict[str, Any], str, str]]:
    """The platform's entries for what a run added, as ``(kind, data, content, agent)``: each
    entry attributed to the agent that was answering (``first``, then each handoff's target).

    A call to a handoff tool that answered its transfer message is a ``handoff``; one the SDK
    declined (a second handoff in one answer) stays a call with its result, as the model saw it.
    """
    outputs = {i.get("call_id"): i.get("output") for i in items if i.get("type") == "function_call_output"}
    handed: set[str] = set()
    current = first
    entries: list[tuple[str, dict[str, Any], str, str]] = []
    for item in items:
        kind, call_id = item.get("type"), item.get("call_id")
        if not isinstance(call_id, str):
            continue  # messages (the runner's) and reasoning
        if kind == "function_call":
            name, arguments = str(item.get("name", "")), str(item.get("arguments", ""))
            target = handoffs.get(name)
            if target is not None and outputs.get(call_id) == target.transfer:
                data = {
                    "from": current,
                    "to": target.agent,
                    "call_id": call_id,
                    "tool": name,
                    "output": target.transfer,
                }
                entries.append((HANDOFF, data, f"{current} → {target.agent}", current))
                handed.add(call_id)
                current = target.agent
            else:
                data = {"call_id": call_id, "name": name, "arguments": arguments}
                entries.append((TOOL_CALL, data, f"{name}({arguments})", current))
        elif kind == "function_call_output" and call_id not in handed:
            output = item.get("output", "")
            content = output if isinstance(output, str) else json.dumps(output)
            entries.append((TOOL_RESULT, {"call_id": call_id, "output": output}, content, current))
    return entries
