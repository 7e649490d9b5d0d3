"""One run of a ``google_adk`` agent (imported by ``GoogleADKFramework.run``: it needs ADK).

ADK's ``Runner`` drives an ``LlmAgent`` on the session ``PlatformSessionService`` serves. Its
events become the run's output: streamed text (partial events) goes to ``session.emit_delta``,
the final text of each model answer makes the reply (``SEPARATOR`` between two), function calls
and their results the run's items, the usage of each model answer the run's usage. A request for
a tool's confirmation (``adk_request_confirmation``) ends the invocation: the run returns a
``Pause`` and keeps, in the agent's state, what ``confirm`` needs to answer ADK.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from django.conf import settings
from django.utils.module_loading import import_string
from google.adk.agents import LlmAgent
from google.adk.agents.run_config import RunConfig, StreamingMode
from google.adk.events.event import Event
from google.adk.runners import Runner
from google.adk.tools import FunctionTool
from google.genai import types

from agents_app.frameworks.base import AgentLike, ApprovalRequest, Pause, Reply, Resume, Usage
from agents_app.frameworks.context import CallContext, call_context
from agents_app.frameworks.google_adk_session import PlatformSessionService
from agents_app.frameworks.model import (
    DEFAULT_HISTORY,
    ModelError,
    api_key,
    openai_client,
    redacted,
    sdk_failure,
)
from agents_app.frameworks.tools import tool_names
from sessions_app.core import SessionView
from sessions_app.stores.base import DELETE, TOOL_CALL, TOOL_RESULT

#: ADK's name for the function call that asks for a tool's confirmation.
CONFIRMATION: Final = "adk_request_confirmation"
#: The key of the agent's own state holding the confirmations a paused run waits for.
PENDING_KEY: Final = "adk_pending"
#: Between the texts of two model answers of one run (e.g. before a tool call, then after it).
SEPARATOR: Final = "\n\n"
#: The most of a tool's output (or of a call's line) an item keeps.
MAX_ITEM_CHARS: Final = 16_000
#: ADK's user id and app name (names within the run only: the view is the tenant's session).
USER: Final = "user"


@dataclass
class ADKRun:
    """An ADK runner for one agent on one session, and what its invocations produced."""

    agent: AgentLike
    session: SessionView
    runner: Runner
    service: PlatformSessionService
    key: str | None
    pieces: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    counted: bool = False

    @classmethod
    async def start(cls, agent: AgentLike, session: SessionView) -> ADKRun:
        """Build the agent (its model on the tenant's guarded client, its tools) and its runner."""
        context = call_context(agent, session)
        key = await api_key(session, agent.config)
        llm = LlmAgent(
            name=_adk_name(agent.name),
            model=_model(agent.config, key, tenant=context.tenant),
            instruction=agent.config.get("instructions") or "",
            tools=_tools(agent.config, context),
            generate_content_config=types.GenerateContentConfig(temperature=agent.config.get("temperature")),
        )
        service = PlatformSessionService(session, app_name=llm.name, user_id=USER, session_id=context.session_id)
        runner = Runner(app_name=llm.name, agent=llm, session_service=service)
        return cls(agent, session, runner, service, key)

    async def ask(self, message: str) -> Reply | Pause:
        """Answer the user's ``message``. A confirmation still asked for belongs to a paused run
        that was cancelled (a session's new run waits for none): it is let go, and the model sees
        the call as ADK answered it (waiting for a confirmation)."""
        if self.session.get(PENDING_KEY):
            self.session.set(PENDING_KEY, DELETE)
        self.service.compact()  # the turns the session's latest summary covers: the summary instead
        content = types.Content(role="user", parts=[types.Part(text=message)])
        return await self._invoke(content, opens_a_turn=True)

    async def confirm(self, answer: Resume) -> Reply | Pause:
        """Go on with the paused invocation: ADK gets each tool's confirmation (approved or not)."""
        pending: dict[str, dict[str, Any]] = self.session.get(PENDING_KEY) or {}
        if not pending:
            raise ModelError("the agent has no tool call waiting for approval")
        parts = []
        for call_id, asked in pending.items():
            decision = answer.decisions.get(call_id)
            if decision is None:
                raise ModelError(f"no decision for the tool call {call_id!r}")
            response = {"confirmed": bool(decision.approve)}
            parts.append(
                types.Part(
                    function_response=types.FunctionResponse(id=asked["request"], name=CONFIRMATION, response=response)
                )
            )
        self.session.set(PENDING_KEY, DELETE)
        return await self._invoke(types.Content(role="user", parts=parts))

    async def _invoke(self, content: types.Content, *, opens_a_turn: bool = False) -> Reply | Pause:
        streaming = StreamingMode.SSE if self.session.streaming else StreamingMode.NONE
        run_config = RunConfig(streaming_mode=streaming)
        first_new = len(self.service.session.events)
        pending: dict[str, dict[str, Any]] = {}
        streamed: set[str] = set()
        events = self.runner.run_async(
            user_id=USER, session_id=self.service.session.id, new_message=content, run_config=run_config
        )
        try:
            async with contextlib.aclosing(events):
                async for event in events:
                    self._take(event, streamed, pending)
        except ModelError:
            raise
        except Exception as exc:
            text = sdk_failure(exc) or f"the agent failed: {type(exc).__name__}: {str(exc)[:300]}"
            raise ModelError(redacted(text, self.key)) from None
        if opens_a_turn and first_new < len(self.service.session.events):
            self.service.mark_turn(first_new)  # the user's message: the history's next entry
        history = self.agent.config.get("history", DEFAULT_HISTORY)
        if pending:
            self.service.flush(history=history, keep_from=_invocation_start(self.service.session.events, first_new))
            self.session.set(PENDING_KEY, pending)
            requests = tuple(ApprovalRequest(call_id, p["tool"], p["arguments"]) for call_id, p in pending.items())
            return Pause(kind="approval", requests=requests)
        self.service.flush(history=history)
        return Reply("".join(self.pieces), self._usage())

    def _take(self, event: Event, streamed: set[str], pending: dict[str, dict[str, Any]]) -> None:
        """One event of the runner: text to stream or keep, items, usage, confirmations asked."""
        if event.error_code and not event.partial:
            detail = redacted(str(event.error_message or ""), self.key)[:300]
            raise ModelError(f"the model failed: {event.error_code}: {detail}")
        parts = (event.content.parts or []) if event.content is not None else []
        if event.partial:
            for part in parts:
                if part.text and not part.thought:
                    self._say(part.text, event.id, streamed)
            return
        if event.usage_metadata is not None:
            self.counted = True
            self.prompt_tokens += event.usage_metadata.prompt_token_count or 0
            self.completion_tokens += event.usage_metadata.candidates_token_count or 0
        if event.author == USER:
            return
        text = "".join(part.text for part in parts if part.text and not part.thought)
        if text and event.id not in streamed:
            self._say(text, event.id, streamed)
        for part in parts:
            if part.function_call is not None:
                self._call(part.function_call, pending)
            elif part.function_response is not None:
                self._result(part.function_response, pending)

    def _say(self, text: str, event_id: str, streamed: set[str]) -> None:
        """Pass ``text`` on (after ``SEPARATOR`` when it starts another answer than the last)."""
        if self.pieces and event_id not in streamed:
            self._piece(SEPARATOR)
        streamed.add(event_id)
        self._piece(text)

    def _piece(self, text: str) -> None:
        self.pieces.append(text)
        self.session.emit_delta(text)

    def _call(self, call: types.FunctionCall, pending: dict[str, dict[str, Any]]) -> None:
        arguments = json.loads(json.dumps(call.args or {}, default=str))
        if call.name == CONFIRMATION:
            original = arguments.get("originalFunctionCall") or {}
            pending[str(original.get("id"))] = {
                "request": call.id,
                "tool": str(original.get("name")),
                "arguments": original.get("args") or {},
            }
            return
        line = f"{call.name}({json.dumps(arguments, ensure_ascii=False)})"
        data = {"call_id": call.id, "name": call.name, "arguments": arguments}
        self.session.append(TOOL_CALL, data, content=_capped(line))

    def _result(self, response: types.FunctionResponse, pending: dict[str, dict[str, Any]]) -> None:
        if response.name == CONFIRMATION or response.id in pending:
            return  # a confirmation's answer, or ADK's note that the call waits for one
        output = response.response or {}
        shown = output.get("result", output) if isinstance(output, dict) else output
        text = _capped(shown if isinstance(shown, str) else json.dumps(shown, ensure_ascii=False, default=str))
        data = {"call_id": response.id, "name": response.name, "output": text}
        self.session.append(TOOL_RESULT, data, content=text)

    def _usage(self) -> Usage | None:
        return Usage(self.prompt_tokens, self.completion_tokens) if self.counted else None


def _adk_name(name: str) -> str:
    """The tenant's agent name as an ADK agent name (an identifier; ``user`` is ADK's own)."""
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return f"agent_{cleaned}"


def _invocation_start(events: list[Event], first_new: int) -> int:
    """Where the paused invocation's events begin: the first of those this run added, or earlier
    when it goes on with an invocation that an earlier run began."""
    invocation = events[-1].invocation_id if events else None
    start = first_new
    while start > 0 and events[start - 1].invocation_id == invocation:
        start -= 1
    return start


def _model(config: dict[str, Any], key: str | None, *, tenant: str) -> Any:
    """ADK's ``OpenAILlm`` on an ``AsyncOpenAI`` client over the tenant's guarded client, sending
    nothing of the server's environment (``sdk_headers``)."""
    from google.adk.integrations.openai import OpenAILlm

    client = openai_client(config, tenant=tenant, key=key)
    options: dict[str, Any] = {"model": config["model"], "client": client}
    if config.get("max_tokens") is not None:
        options["max_tokens"] = config["max_tokens"]
    return OpenAILlm(**options)


def _tools(config: dict[str, Any], context: CallContext) -> list[FunctionTool]:
    """The agent's tools, those in ``approval`` waiting for a person; ``ModelError`` for a tool the
    tenant may not use (alike: as if the deployment had none of that name)."""
    offered = tool_names(context.tenant)
    approval = set(config.get("approval", []))
    tools = []
    for name in config.get("tools", []):
        path = settings.AK_AGENTS["TOOLS"].get(name)
        if name not in offered or path is None:
            listed = ", ".join(offered) or "none"
            raise ModelError(f"unknown tool {name!r}; this deployment offers: {listed} (AK_AGENTS__TOOLS)")
        try:
            function = import_string(path)
        except ImportError as exc:
            raise ModelError(f"the tool {name!r} does not load from {path!r}: {exc}") from None
        tools.append(FunctionTool(bound(name, function, context), require_confirmation=name in approval))
    return tools


def bound(name: str, function: Callable[..., Any], context: CallContext) -> Callable[..., Any]:
    """``function`` as the tool ``name``: when its first parameter is annotated ``CallContext``,
    the run's context is given there, and the model sees only the other parameters."""
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # annotations that do not resolve: ADK reads them as they are
        hints = dict(getattr(function, "__annotations__", {}))
    signature = inspect.signature(function)
    parameters = list(signature.parameters.values())
    given = [context] if parameters and hints.get(parameters[0].name) is CallContext else []
    shown = parameters[len(given) :]

    if inspect.iscoroutinefunction(function):

        async def tool(*args: Any, **kwargs: Any) -> Any:
            return await function(*given, *args, **kwargs)

    else:

        def tool(*args: Any, **kwargs: Any) -> Any:
            return function(*given, *args, **kwargs)

    tool.__name__ = tool.__qualname__ = name
    tool.__doc__ = function.__doc__
    tool.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[p.replace(annotation=hints.get(p.name, p.annotation)) for p in shown],
        return_annotation=hints.get("return", signature.return_annotation),
    )
    tool.__annotations__ = {p.name: hints[p.name] for p in shown if p.name in hints}
    if "return" in hints:
        tool.__annotations__["return"] = hints["return"]
    return tool


def _capped(text: str) -> str:
    return text if len(text) <= MAX_ITEM_CHARS else text[:MAX_ITEM_CHARS] + "…"
