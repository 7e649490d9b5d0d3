"""The codec between the platform's history and PydanticAI's messages, through PydanticAI's
documented JSON adapter, ``ModelMessagesTypeAdapter``, both ways.

============================  ==========================================================================
platform entry                PydanticAI message (as the adapter's JSON)
============================  ==========================================================================
user text message             ``{"kind": "request", "parts": [{"part_kind": "user-prompt", "content"}]}``
assistant text message        ``{"kind": "response", "parts": [{"part_kind": "text", "content"}]}``
``tool_call``                 a response's ``{"part_kind": "tool-call", "tool_name", "args", "tool_call_id"}``
``tool_result``               a request's ``{"part_kind": "tool-return", "tool_name", "content", "tool_call_id"}``
============================  ==========================================================================

The ``tool_call`` and ``tool_result`` items have the data of the ``openai_agents`` ones
(``call_id``, ``name``, ``arguments`` as a JSON string; ``call_id``, ``output``), so either
framework shows the model the other's calls. Calls and results are sent only in pairs (a Chat
Completions server refuses a call without its result); a handoff, or an item without a
``call_id``, is left out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sessions_app.core import SessionView
from sessions_app.stores.base import TOOL_CALL, TOOL_RESULT, Message

#: A message as ``ModelMessagesTypeAdapter``'s JSON.
MessageJSON = dict[str, Any]


def history_messages(messages: Sequence[Message], limit: int) -> list[Any]:
    """PydanticAI's ``ModelMessage`` list for the last ``limit`` of ``messages`` (oldest first)."""
    if limit <= 0:
        return []
    return messages_from_json(history_json(messages[-limit:]))


def history_json(messages: Sequence[Message]) -> list[MessageJSON]:
    """The adapter's JSON for ``messages``: consecutive parts of one side merged into one message."""
    parts: list[tuple[str, dict[str, Any]]] = []
    names: dict[str, str] = {}
    for message in messages:
        data = message.data or {}
        if message.is_text:
            if message.role == "user":
                parts.append(("request", {"part_kind": "user-prompt", "content": message.content}))
            elif message.role == "assistant":
                parts.append(("response", {"part_kind": "text", "content": message.content}))
            continue
        call_id = data.get("call_id")
        if not isinstance(call_id, str):
            continue
        if message.kind == TOOL_CALL and isinstance(data.get("name"), str):
            names[call_id] = data["name"]
            part = {"part_kind": "tool-call", "tool_name": data["name"], "tool_call_id": call_id}
            parts.append(("response", {**part, "args": _arguments(data.get("arguments"))}))
        elif message.kind == TOOL_RESULT:
            output = data.get("output", "")
            part = {"part_kind": "tool-return", "tool_call_id": call_id, "content": output}
            parts.append(("request", {**part, "tool_name": data.get("name") or names.get(call_id, "tool")}))
    return _merged(_paired(parts))


def _arguments(arguments: Any) -> Any:
    if isinstance(arguments, str):
        return arguments or "{}"
    return arguments if isinstance(arguments, dict) else {}


def _paired(parts: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    calls = {p["tool_call_id"] for _, p in parts if p["part_kind"] == "tool-call"}
    returns = {p["tool_call_id"] for _, p in parts if p["part_kind"] == "tool-return"}
    return [(side, p) for side, p in parts if "tool_call_id" not in p or p["tool_call_id"] in calls & returns]


def _merged(parts: list[tuple[str, dict[str, Any]]]) -> list[MessageJSON]:
    merged: list[MessageJSON] = []
    for side, part in parts:
        if merged and merged[-1]["kind"] == side:
            merged[-1]["parts"].append(part)
        else:
            merged.append({"kind": side, "parts": [part]})
    return merged


def messages_from_json(data: list[MessageJSON]) -> list[Any]:
    """``ModelMessagesTypeAdapter.validate_python``: the JSON back to PydanticAI's messages."""
    from pydantic_ai.messages import ModelMessagesTypeAdapter

    return ModelMessagesTypeAdapter.validate_python(data)


def messages_as_json(messages: Sequence[Any]) -> list[MessageJSON]:
    """``ModelMessagesTypeAdapter.dump_python(mode="json")``: PydanticAI's messages as JSON."""
    from pydantic_ai.messages import ModelMessagesTypeAdapter

    return ModelMessagesTypeAdapter.dump_python(list(messages), mode="json")


def run_entries(messages: Sequence[Any]) -> list[tuple[str, dict[str, Any], str]]:
    """The platform's items for the messages a run added, as ``(kind, data, content)``: a tool
    call per ``tool-call`` part, a result per ``tool-return`` (or ``retry-prompt`` answering a call)."""
    entries: list[tuple[str, dict[str, Any], str]] = []
    for message in messages_as_json(messages):
        for part in message.get("parts", []):
            kind, call_id = part.get("part_kind"), part.get("tool_call_id")
            if not isinstance(call_id, str):
                continue
            if kind == "tool-call":
                args = part.get("args")
                arguments = args if isinstance(args, str) else json.dumps(args or {})
                data = {"call_id": call_id, "name": part["tool_name"], "arguments": arguments}
                entries.append((TOOL_CALL, data, f"{part['tool_name']}({arguments})"))
            elif kind in ("tool-return", "retry-prompt"):
                output = part.get("content", "")
                text = output if isinstance(output, str) else json.dumps(output)
                data = {"call_id": call_id, "name": part.get("tool_name"), "output": text}
                entries.append((TOOL_RESULT, data, text))
    return entries


def append_items(session: SessionView, messages: Sequence[Any]) -> None:
    """Append the run's items for ``messages`` to the view (committed with its reply)."""
    for kind, data, content in run_entries(messages):
        session.append(kind, data, content=content)


def reply_text(messages: Sequence[Any], separator: str = "\n\n") -> str:
    """The text of each model answer among ``messages``, ``separator`` between two of them."""
    texts = []
    for message in messages_as_json(messages):
        if message.get("kind") == "response":
            text = "".join(p.get("content", "") for p in message.get("parts", []) if p.get("part_kind") == "text")
            if text:
                texts.append(text)
    return separator.join(texts)
