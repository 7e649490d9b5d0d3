"""What the ``smolagents`` adapter hands smolagents and takes back: the model's client (bridged to
the event loop), the deployment's tools as smolagents ``Tool``s, the history as memory steps, and
the run's memory steps as the platform's items and usage.

Items: each call of an ``ActionStep`` (but ``final_answer``, whose argument is the reply) is a
``tool_call`` (``call_id``, ``name``, ``arguments`` as JSON, ``step``); what it answered is a
``tool_result`` (``call_id``, ``output``): the call's observation, or the error its step met.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import typing
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

from agents_app.frameworks.base import Usage
from agents_app.frameworks.tools import UnknownTool
from sessions_app.stores.base import TOOL_CALL, TOOL_RESULT, Message

#: smolagents' name of the tool that gives the final answer.
FINAL_ANSWER = "final_answer"
_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object"}


class LoopClient:
    """The part of a synchronous ``openai.OpenAI`` client that smolagents' ``OpenAIModel`` calls
    (``chat.completions.create``), made from an ``AsyncOpenAI`` client on ``loop``: a call from
    the run's worker thread waits for the request, which the loop (and its guarded client) makes."""

    def __init__(self, client: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._client = client
        self._loop = loop
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self._create))

    def _create(self, **kwargs: Any) -> Any:
        if kwargs.get("stream"):
            raise ValueError("the smolagents adapter asks for whole answers only")
        return asyncio.run_coroutine_threadsafe(self._client.chat.completions.create(**kwargs), self._loop).result()


def registry_tool(name: str, function: Callable[..., Any], *, loop: asyncio.AbstractEventLoop | None) -> Any:
    """A registry function as a smolagents ``Tool`` named ``name``: its inputs from the signature
    (JSON types of the annotations), its description and inputs' from the docstring (``Args:``).
    An async function runs on ``loop``. ``UnknownTool`` for a function smolagents cannot take."""
    from smolagents import Tool

    try:
        signature = inspect.signature(function)
        hints = typing.get_type_hints(function)
    except (TypeError, ValueError, NameError) as exc:
        raise UnknownTool(f"the tool {name!r} cannot be a smolagents tool: {exc}") from None
    described = _argument_docs(function.__doc__ or "")
    inputs: dict[str, dict[str, Any]] = {}
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise UnknownTool(f"the tool {name!r} cannot be a smolagents tool: it takes *{parameter.name}")
        kind = _json_type(hints.get(parameter.name))
        if kind is None:
            raise UnknownTool(
                f"the tool {name!r} cannot be a smolagents tool: its parameter {parameter.name!r} is not"
                " a string, number, boolean, list or dict (a run context is read with current_call())"
            )
        entry = {"type": kind, "description": described.get(parameter.name, parameter.name)}
        if parameter.default is not parameter.empty:
            entry["nullable"] = True
        inputs[parameter.name] = entry

    def forward(self: Any, **arguments: Any) -> Any:
        result = function(**arguments)
        if inspect.isawaitable(result):
            if loop is None:
                raise RuntimeError("an async tool needs the run's event loop")
            return asyncio.run_coroutine_threadsafe(_awaited(result), loop).result()
        return result

    attributes = {
        "name": name,
        "description": _summary(function.__doc__ or "") or name,
        "inputs": inputs,
        "output_type": "any",
        "skip_forward_signature_validation": True,
        "forward": forward,
    }
    try:
        return type(f"RegistryTool_{name}", (Tool,), attributes)()
    except Exception as exc:  # smolagents refuses the tool's description
        raise UnknownTool(f"the tool {name!r} cannot be a smolagents tool: {exc}") from None


async def _awaited(result: Any) -> Any:
    return await result


def _json_type(annotation: Any) -> str | None:
    origin = typing.get_origin(annotation) or annotation
    return _JSON_TYPES.get(origin)


def _summary(doc: str) -> str:
    """The docstring's first paragraph."""
    return inspect.cleandoc(doc).split("\n\n", 1)[0].strip() if doc else ""


def _argument_docs(doc: str) -> dict[str, str]:
    """``{name: description}`` from a Google-style ``Args:`` section."""
    found: dict[str, str] = {}
    section = re.split(r"^\s*Args:\s*$", inspect.cleandoc(doc), maxsplit=1, flags=re.MULTILINE)
    if len(section) == 2:
        for line in section[1].splitlines():
            match = re.match(r"^\s+(\w+)(?:\s*\([^)]*\))?:\s*(.+)$", line)
            if match:
                found[match.group(1)] = match.group(2).strip()
            elif line.strip() and not line.startswith((" ", "\t")):
                break  # the next section
    return found


def history_steps(messages: Sequence[Message], limit: int) -> list[Any]:
    """Memory steps for the last ``limit`` text messages: a ``TaskStep`` per user message, an
    ``ActionStep`` (its model output the answer) per assistant message."""
    from smolagents.memory import ActionStep, TaskStep
    from smolagents.monitoring import Timing

    if limit <= 0:
        return []
    steps: list[Any] = []
    for number, message in enumerate(messages[-limit:], start=1):
        if message.role == "user":
            steps.append(TaskStep(task=message.content))
        elif message.role == "assistant":
            steps.append(ActionStep(step_number=number, timing=Timing(start_time=0.0), model_output=message.content))
    return steps


def step_entries(steps: Sequence[Any]) -> list[tuple[str, dict[str, Any], str]]:
    """The platform's items for a run's memory steps, as ``(kind, data, content)``."""
    from smolagents.memory import ActionStep

    entries: list[tuple[str, dict[str, Any], str]] = []
    for step in steps:
        if not isinstance(step, ActionStep):
            continue
        calls = [call for call in _calls(step) if call[1] != FINAL_ANSWER]
        if not calls:
            continue
        outputs = _outputs(step, len(calls))
        for (call_id, name, arguments), output in zip(calls, outputs, strict=True):
            arguments = arguments if isinstance(arguments, str) else json.dumps(arguments)
            data = {"call_id": call_id, "name": name, "arguments": arguments, "step": step.step_number}
            entries.append((TOOL_CALL, data, f"{name}({arguments})"))
            entries.append((TOOL_RESULT, {"call_id": call_id, "output": output}, output))
    return entries


def _calls(step: Any) -> list[tuple[str, str, Any]]:
    """A step's calls as ``(id, name, arguments)``: those it ran, or, for a step whose calls
    failed before smolagents recorded them, those its model asked for."""
    if step.tool_calls:
        return [(call.id, call.name, call.arguments) for call in step.tool_calls]
    message = step.model_output_message
    asked = (getattr(message, "tool_calls", None) or []) if message is not None else []
    return [(call.id, call.function.name, call.function.arguments) for call in asked]


def _outputs(step: Any, count: int) -> list[str]:
    """What each of a step's ``count`` calls answered: its observation (smolagents joins those of
    a step's calls, a line each, in call order), or the error the step met."""
    if step.error is not None:
        return [f"Error: {step.error}"] * count
    observations = (step.observations or "").split("\n") if count > 1 else [step.observations or ""]
    if len(observations) != count:
        return [step.observations or ""] * count
    return observations


def steps_usage(steps: Sequence[Any]) -> Usage | None:
    """The tokens the run's steps report, summed (None when none reported any)."""
    prompt = completion = 0
    for step in steps:
        usage = getattr(step, "token_usage", None)
        if usage is not None:
            prompt += usage.input_tokens
            completion += usage.output_tokens
    return Usage(prompt, completion) if prompt or completion else None
