"""``openai_agents``: an agent of the OpenAI Agents SDK, configured by data, not code.

Config::

    {"instructions": "You triage support questions.",
     "base_url": "https://api.openai.com/v1", "model": "gpt-4o-mini", "api_key": {"secret": "openai"},
     "temperature": 0.2, "max_tokens": 512,
     "tools": ["get_weather", {"name": "refund", "needs_approval": true}],
     "handoffs": ["billing"], "history": 20, "max_turns": 10}

The model keys are ``openai_chat``'s (Chat Completions through ``agents_app.outbound``);
``tools`` are names the deployment declares (``tools.py``), each call getting the run's
``CallContext`` as the SDK's run context; a call of a tool with ``needs_approval`` pauses the run
until a person approves or denies it (``openai_agents_pause``); ``handoffs`` name the tenant's other ``openai_agents``
agents (at most ``MAX_AGENTS`` reachable, cycles allowed, loaded when the agent runs);
``history`` is how many of the session's latest items the model sees; ``max_turns`` how many
model calls a run may make before it fails.

The tool calls, results and handoffs a run produced are committed with its reply
(``openai_agents_session.WindowSession``). The agent a run ended on is kept in the entry agent's
state (``current_agent``): the next turn starts there. Tracing stays off unless
``AK_AGENTS__OPENAI_TRACING``.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from agents_app import patterns
from agents_app.frameworks.base import (
    AgentLike,
    ConfigError,
    ConfigProblems,
    Pause,
    Reply,
    Resume,
    Usage,
    check_unknown_keys,
    path_of,
)
from agents_app.frameworks.context import call_context
from agents_app.frameworks.model import (
    DEFAULT_HISTORY,
    HISTORY_SCHEMA,
    MAX_HISTORY,
    MODEL_KEYS,
    TEXT_SCHEMA,
    ModelError,
    ModelFramework,
    check_text,
    model_config_schema,
    redacted,
    sdk_failure,
    validate_int,
    validate_model_keys,
)
from agents_app.frameworks.openai_agents_pause import (
    PAUSED,
    PausedRun,
    decide,
    pause_of,
    restore,
    state_json,
)
from agents_app.frameworks.openai_agents_session import WindowSession
from agents_app.frameworks.openai_agents_team import MAX_AGENTS, Team
from agents_app.frameworks.tools import (
    UnknownTool,
    check_tenant_tools,
    check_tool_entries,
    entry_names,
    tool_entries_schema,
    tool_loaded,
    tool_names,
)
from sessions_app.core import SessionView
from sessions_app.stores.base import DELETE

DEFAULT_MAX_TURNS = 10
MAX_MAX_TURNS = 50
KEYS = MODEL_KEYS | {"instructions", "tools", "handoffs", "history", "max_turns"}
#: The key of the entry agent's own state naming the agent its session's next turn starts with.
CURRENT_AGENT = "current_agent"
#: Between the texts of two model answers of one run (e.g. before a tool call, then after it).
SEPARATOR = "\n\n"
SDK_MISSING = "the OpenAI Agents SDK is not installed: pip install -r requirements/openai_agents.txt"
AGENT_NAME = re.compile(patterns.NAME)


class OpenAIAgentsFramework(ModelFramework):
    name = "openai_agents"

    def config_schema(self) -> dict[str, Any]:
        tools = tool_entries_schema(tool_names())  # those every tenant may use: some are kept for some
        return model_config_schema(
            instructions=TEXT_SCHEMA,
            tools=tools,
            handoffs={
                "type": "array",
                "uniqueItems": True,
                "maxItems": MAX_AGENTS - 1,
                "items": {"type": "string", "pattern": patterns.anchored(patterns.NAME)},
                "description": "The names of the tenant's openai_agents agents it may hand the conversation to.",
            },
            history=HISTORY_SCHEMA,
            max_turns={"type": "integer", "minimum": 1, "maximum": MAX_MAX_TURNS},
        )

    takes_handoffs = True

    def check_config(self, config: dict[str, Any], problems: ConfigProblems) -> None:
        check_unknown_keys(config, KEYS, self.name, problems)
        validate_model_keys(config, problems)
        check_text(config, "instructions", problems)
        check_tool_entries(config.get("tools", []), problems)
        _check_handoffs(config.get("handoffs", []), problems)
        validate_int(config, "history", problems, default=DEFAULT_HISTORY, low=0, high=MAX_HISTORY)
        validate_int(config, "max_turns", problems, default=DEFAULT_MAX_TURNS, low=1, high=MAX_MAX_TURNS)

    def handoff_references(self, config: dict[str, Any]) -> dict[str, str]:
        return {path_of("handoffs", i): name for i, name in enumerate(config.get("handoffs", []))}

    def check_runnable(self, config: dict[str, Any]) -> None:
        try:
            import agents  # noqa: F401
        except ImportError:
            raise ConfigError("framework", SDK_MISSING) from None
        try:
            for name in entry_names(config.get("tools", [])):
                tool_loaded(name)
        except UnknownTool as exc:
            raise ConfigError("tools", str(exc)) from None
        super().check_runnable(config)

    def check_tenant(self, config: dict[str, Any], *, tenant: str | None) -> None:
        check_tenant_tools(entry_names(config.get("tools", [])), tenant=tenant)

    def preload(self) -> None:
        import agents  # noqa: F401
        import httpx2  # noqa: F401
        from openai.types.responses import ResponseTextDeltaEvent  # noqa: F401

        for name in settings.AK_AGENTS["TOOLS"]:
            with contextlib.suppress(UnknownTool):  # refused when an agent names it
                tool_loaded(name)

    def window_for(self, config: dict[str, Any]) -> int:
        return config.get("history", DEFAULT_HISTORY)

    async def run(self, agent: AgentLike, session: SessionView, message: str) -> Reply | Pause:
        """Run the agent the session's last turn ended on (or ``agent``) with the SDK's runner. A
        call of a tool that needs approval pauses the run (``openai_agents_pause``)."""
        if session.get(PAUSED) is not None:
            session.set(PAUSED, DELETE)  # a run paused before, and cancelled: forgotten
        sdk_run = await SdkRun.load(agent, session)
        return await sdk_run.go(message, before="")

    async def resume(self, agent: AgentLike, session: SessionView, pause: Pause, answer: Resume) -> Reply | Pause:
        """Go on with the run kept under ``PAUSED``, each call approved or rejected as ``answer`` says."""
        paused = PausedRun.read(session.get(PAUSED))
        sdk_run = await SdkRun.load(agent, session, start=paused.start, added=paused.added)
        state = await restore(sdk_run.start, paused, sdk_run.context)
        decide(state, answer)
        return await sdk_run.go(state, before=paused.text)


@dataclass
class SdkRun:
    """One run of the SDK's runner for an agent on a session: from a message, or from a paused
    run's ``RunState``."""

    session: SessionView
    context: Any
    team: Team
    start: Any
    memory: WindowSession
    options: dict[str, Any]

    @classmethod
    async def load(
        cls, agent: AgentLike, session: SessionView, *, start: str | None = None, added: list[Any] | None = None
    ) -> SdkRun:
        """The team of ``agent`` and the run's options. ``start``: the agent a paused run started
        with (else the one the session's last turn ended on); ``added``: what it held."""
        try:
            from agents import RunConfig
        except ImportError:
            raise ModelError(SDK_MISSING) from None
        context = call_context(agent, session)
        team = await Team.load(agent, session, tenant=context.tenant)
        if start is None:
            first = team.agents.get(session.get(CURRENT_AGENT, agent.name)) or team.agents[agent.name]
        elif (first := team.agents.get(start)) is None:
            raise ModelError(f"the paused run's agent {start!r} is no longer reachable through handoffs")
        memory = WindowSession(
            session,
            history=agent.config.get("history", DEFAULT_HISTORY),
            handoffs=team.handoff_tools,
            first=first.name,
            added=added or (),
        )
        run_config = RunConfig(tracing_disabled=not settings.AK_AGENTS["OPENAI_TRACING"])
        max_turns = agent.config.get("max_turns", DEFAULT_MAX_TURNS)
        options = {"session": memory, "run_config": run_config, "max_turns": max_turns, "context": context}
        return cls(session, context, team, first, memory, options)

    async def go(self, given: Any, *, before: str) -> Reply | Pause:
        """Run from ``given`` (a message, or a ``RunState`` with its calls decided); ``before``:
        the reply's text before a pause. Returns the reply, or a ``Pause`` for calls to approve."""
        try:
            run = _streamed if self.session.streaming else _plain
            result, text = await run(self.start, given, self.session, self.options, before)
        except Exception as exc:
            raise ModelError(_failure(exc, self.options["max_turns"], self.team.keys)) from None
        if result.interruptions:
            try:
                paused = PausedRun(state_json(result), self.start.name, self.memory.added, text)
            except Exception as exc:
                raise ModelError(f"the paused run cannot be kept: {type(exc).__name__}: {str(exc)[:300]}") from None
            self.session.set(PAUSED, paused.as_json())
            return pause_of(result.interruptions)
        self.memory.flush()
        if self.session.get(PAUSED) is not None:
            self.session.set(PAUSED, DELETE)
        entry = self.context.agent
        if self.session.get(CURRENT_AGENT, entry) != result.last_agent.name:
            self.session.set(CURRENT_AGENT, result.last_agent.name)
        return Reply(text, _usage(result), agent=result.last_agent.name)


def _check_handoffs(handoffs: Any, problems: ConfigProblems) -> None:
    if not isinstance(handoffs, list):
        problems.add("handoffs", "must be a list of the names of the tenant's openai_agents agents")
        return
    if len(handoffs) >= MAX_AGENTS:
        problems.add("handoffs", f"at most {MAX_AGENTS - 1} agents")
    for i, name in enumerate(handoffs):
        if not isinstance(name, str) or not AGENT_NAME.fullmatch(name):
            problems.add(path_of("handoffs", i), "must be the name of one of the tenant's openai_agents agents")
        elif name in handoffs[:i]:
            problems.add(path_of("handoffs", i), f"names the agent {name!r} twice")


async def _plain(start: Any, given: Any, session: SessionView, options: dict[str, Any], before: str) -> tuple[Any, str]:
    """Run to the end or to a pause (``options``: ``Runner.run``'s); the reply is the answers'
    texts (those of a resumed run's ``new_items`` include the ones before its pause, ``before``)."""
    from agents import ItemHelpers, MessageOutputItem, Runner

    result = await Runner.run(start, given, **options)
    texts = [ItemHelpers.text_message_output(i) for i in result.new_items if isinstance(i, MessageOutputItem)]
    text = SEPARATOR.join(text for text in texts if text)
    if before and not text.startswith(before):
        text = SEPARATOR.join(part for part in (before, text) if part)
    return result, text


async def _streamed(
    start: Any, given: Any, session: SessionView, options: dict[str, Any], before: str
) -> tuple[Any, str]:
    """Run streamed, passing the text of the model's answers on as it comes. The reply is
    ``before`` (a resumed run's text before its pause), then what was passed on: the answers'
    texts, ``SEPARATOR`` between two of them."""
    from agents import Runner
    from openai.types.responses import ResponseCreatedEvent, ResponseTextDeltaEvent

    result = Runner.run_streamed(start, given, **options)
    pieces: list[str] = [before] if before else []
    new_answer = True
    try:
        async for event in result.stream_events():
            if event.type != "raw_response_event":
                continue
            if isinstance(event.data, ResponseCreatedEvent):
                new_answer = True
            elif isinstance(event.data, ResponseTextDeltaEvent) and event.data.delta:
                for piece in ([SEPARATOR] if new_answer and pieces else []) + [event.data.delta]:
                    pieces.append(piece)
                    session.emit_delta(piece)
                new_answer = False
    except BaseException:
        result.cancel()
        raise
    return result, "".join(pieces)


def _usage(result: Any) -> Usage | None:
    usage = result.context_wrapper.usage
    if not usage.input_tokens and not usage.output_tokens:
        return None  # the server reported none
    return Usage(usage.input_tokens, usage.output_tokens)


def _failure(exc: Exception, max_turns: int, keys: list[str]) -> str:
    """What failed, for the run's error: without the API keys the run sent."""
    from agents.exceptions import MaxTurnsExceeded

    if isinstance(exc, MaxTurnsExceeded):
        text = f"the run reached max_turns ({max_turns} model calls) without a final answer"
    else:
        text = sdk_failure(exc) or f"the agent failed: {type(exc).__name__}: {str(exc)[:300]}"
    for key in keys:
        text = redacted(text, key)
    return text
