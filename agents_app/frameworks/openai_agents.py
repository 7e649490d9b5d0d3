"""``openai_agents``: an agent of the OpenAI Agents SDK, configured by data, not code.

Config::

    {"instructions": "You triage support questions.",
     "base_url": "https://api.openai.com/v1", "model": "gpt-4o-mini", "api_key": {"secret": "openai"},
     "temperature": 0.2, "max_tokens": 512,
     "tools": ["get_weather"], "handoffs": ["billing"], "history": 20, "max_turns": 10}

The model keys are ``openai_chat``'s (Chat Completions through ``agents_app.outbound``);
``tools`` are names the deployment declares (``tools.py``), each call getting the run's
``CallContext`` as the SDK's run context; ``handoffs`` name the tenant's other ``openai_agents``
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
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from agents_app import patterns
from agents_app.frameworks.base import (
    AgentLike,
    ConfigError,
    ConfigProblems,
    Reply,
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
    MODEL_KEYS_SCHEMA,
    ModelError,
    ModelFramework,
    api_key,
    redacted,
    sdk_failure,
    sdk_headers,
    validate_int,
    validate_model_keys,
)
from agents_app.frameworks.openai_agents_session import HandoffTool, WindowSession
from agents_app.frameworks.tools import UnknownTool, tool_loaded, tool_names, tools_named
from agents_app.outbound import shared_client
from infra.io_threads import db
from sessions_app.core import SessionView

DEFAULT_MAX_TURNS = 10
MAX_MAX_TURNS = 50
#: Most agents one run may reach: its own and those its handoffs lead to.
MAX_AGENTS = 10
KEYS = MODEL_KEYS | {"instructions", "tools", "handoffs", "history", "max_turns"}
#: The key of the entry agent's own state naming the agent its session's next turn starts with.
CURRENT_AGENT = "current_agent"
#: Between the texts of two model answers of one run (e.g. before a tool call, then after it).
SEPARATOR = "\n\n"
SDK_MISSING = "the OpenAI Agents SDK is not installed: pip install -r requirements/openai_agents.txt"
AGENT_NAME = re.compile(patterns.NAME)
#: The API key sent to a server when the agent names none.
PLACEHOLDER_KEY = "unused"


class OpenAIAgentsFramework(ModelFramework):
    name = "openai_agents"

    def config_schema(self) -> dict[str, Any]:
        declared = tool_names()  # those every tenant may use: some may be kept for some tenants
        tools: dict[str, Any] = {"type": "array", "uniqueItems": True, "description": "Tools the deployment offers."}
        tools.update({"items": {"type": "string", "enum": declared}} if declared else {"maxItems": 0})
        return {
            "type": "object",
            "additionalProperties": False,
            "required": ["base_url", "model"],
            "properties": {
                **MODEL_KEYS_SCHEMA,
                "instructions": {"type": "string", "pattern": patterns.anchored(patterns.NO_NUL)},
                "tools": tools,
                "handoffs": {
                    "type": "array",
                    "uniqueItems": True,
                    "maxItems": MAX_AGENTS - 1,
                    "items": {"type": "string", "pattern": patterns.anchored(patterns.NAME)},
                    "description": "The names of the tenant's openai_agents agents it may hand the conversation to.",
                },
                "history": HISTORY_SCHEMA,
                "max_turns": {"type": "integer", "minimum": 1, "maximum": MAX_MAX_TURNS},
            },
        }

    takes_handoffs = True

    def check_config(self, config: dict[str, Any], problems: ConfigProblems) -> None:
        check_unknown_keys(config, KEYS, self.name, problems)
        validate_model_keys(config, problems)
        if "instructions" in config and not isinstance(config["instructions"], str):
            problems.add("instructions", "must be a string")
        _check_tools(config.get("tools", []), problems)
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
            for name in config.get("tools", []):
                tool_loaded(name)
        except UnknownTool as exc:
            raise ConfigError("tools", str(exc)) from None
        super().check_runnable(config)

    def check_tenant(self, config: dict[str, Any], *, tenant: str | None) -> None:
        offered = tool_names(tenant)
        for i, name in enumerate(config.get("tools", [])):
            if name not in offered:
                listed = ", ".join(offered) or "none"
                raise ConfigError(path_of("tools", i), f"unknown tool {name!r}; this deployment offers: {listed}")

    def preload(self) -> None:
        import agents  # noqa: F401
        import httpx2  # noqa: F401
        from openai.types.responses import ResponseTextDeltaEvent  # noqa: F401

        for name in settings.AK_AGENTS["TOOLS"]:
            with contextlib.suppress(UnknownTool):  # refused when an agent names it
                tool_loaded(name)

    def window_for(self, config: dict[str, Any]) -> int:
        return config.get("history", DEFAULT_HISTORY)

    async def run(self, agent: AgentLike, session: SessionView, message: str) -> Reply:
        """Run the agent the session's last turn ended on (or ``agent``) with the SDK's runner."""
        try:
            from agents import RunConfig
        except ImportError:
            raise ModelError(SDK_MISSING) from None
        context = call_context(agent, session)
        team = await Team.load(agent, session, tenant=context.tenant)
        start = team.agents.get(session.get(CURRENT_AGENT, agent.name)) or team.agents[agent.name]
        memory = WindowSession(
            session,
            history=agent.config.get("history", DEFAULT_HISTORY),
            handoffs=team.handoff_tools,
            first=start.name,
        )
        run_config = RunConfig(tracing_disabled=not settings.AK_AGENTS["OPENAI_TRACING"])
        max_turns = agent.config.get("max_turns", DEFAULT_MAX_TURNS)
        options = {"session": memory, "run_config": run_config, "max_turns": max_turns, "context": context}
        try:
            run = _streamed if session.streaming else _plain
            result, text = await run(start, message, session, options)
        except Exception as exc:
            raise ModelError(_failure(exc, max_turns, team.keys)) from None
        memory.flush()
        if session.get(CURRENT_AGENT, agent.name) != result.last_agent.name:
            session.set(CURRENT_AGENT, result.last_agent.name)
        return Reply(text, _usage(result), agent=result.last_agent.name)


def _check_tools(tools: Any, problems: ConfigProblems) -> None:
    """The form of ``tools``; which names a tenant may list is ``check_tenant``'s to say."""
    if not isinstance(tools, list):
        problems.add("tools", "must be a list of tool names")
        return
    declared = settings.AK_AGENTS["TOOLS"]  # those kept for some tenants too: check_tenant narrows
    for i, name in enumerate(tools):
        if not isinstance(name, str):
            problems.add(path_of("tools", i), "must be a tool's name (a string)")
        elif name not in declared:
            offered = ", ".join(tool_names()) or "none"
            problems.add(path_of("tools", i), f"unknown tool {name!r}; this deployment offers: {offered}")
        elif name in tools[:i]:
            problems.add(path_of("tools", i), f"names the tool {name!r} twice")


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


@dataclass
class Team:
    """The SDK agents one run may use: the entry agent and those its handoffs reach."""

    #: SDK ``Agent`` by name (the tenant's agent names).
    agents: dict[str, Any]
    #: Every handoff tool of those agents, by the tool's name.
    handoff_tools: dict[str, HandoffTool] = field(default_factory=dict)
    #: The API keys the run sends (to keep them out of its errors).
    keys: list[str] = field(default_factory=list)

    @classmethod
    async def load(cls, agent: AgentLike, session: SessionView, *, tenant: str) -> Team:
        """Load the agents of ``tenant`` reachable from ``agent`` and build each (its model, key,
        tools). Raises ``ModelError`` for a handoff that names no ``openai_agents`` agent, or an
        unknown tool."""
        configs = {agent.name: agent.config}
        if agent.config.get("handoffs"):
            configs = await db(_reachable, tenant_slug=tenant, entry=agent.name, config=agent.config)
        team = cls(agents={})
        secrets: dict[str, str | None] = {}
        for name, config in configs.items():
            name_of_secret = str(config.get("api_key"))
            if name_of_secret not in secrets:
                secrets[name_of_secret] = await api_key(session, config)
            key = secrets[name_of_secret]
            team.agents[name] = _sdk_agent(name, config, key, tenant=tenant)
            if key:
                team.keys.append(key)
        team._wire(configs)
        return team

    def _wire(self, configs: dict[str, dict[str, Any]]) -> None:
        """Give each agent its handoffs (after all are built: handoffs may go round, A→B→A)."""
        from agents import handoff

        for name, config in configs.items():
            for target in config.get("handoffs", []):
                made = handoff(self.agents[target])
                known = self.handoff_tools.get(made.tool_name)
                if known is not None and known.agent != target:
                    raise ModelError(f"the handoffs to {known.agent!r} and {target!r} have one tool name")
                self.handoff_tools[made.tool_name] = HandoffTool(target, made.get_transfer_message(self.agents[target]))
                self.agents[name].handoffs.append(made)


def _reachable(*, tenant_slug: str, entry: str, config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The configs of ``entry`` and of every agent its handoffs reach, by name (a query per
    step). Raises ``ModelError`` for a name that is not the tenant's ``openai_agents`` agent,
    or when more than ``MAX_AGENTS`` are reachable."""
    from agents_app.selectors import agent_configs

    configs = {entry: config}
    new = [entry]
    while wanted := sorted({t for name in new for t in configs[name].get("handoffs", [])} - configs.keys()):
        found = agent_configs(tenant_slug=tenant_slug, names=wanted)
        for name in wanted:
            if name not in found:
                raise ModelError(f"the handoff {name!r} names no agent of the tenant (one of its openai_agents agents)")
            framework, target = found[name]
            if framework != OpenAIAgentsFramework.name:
                raise ModelError(f"the handoff {name!r} names an agent of framework {framework}, not openai_agents")
            configs[name] = target
        if len(configs) > MAX_AGENTS:
            raise ModelError(f"more than {MAX_AGENTS} agents are reachable through handoffs")
        new = wanted
    return configs


def _sdk_agent(name: str, config: dict[str, Any], key: str | None, *, tenant: str | None) -> Any:
    """The SDK ``Agent`` for an agent's config of ``tenant``'s: its model over the loop's guarded
    client of ``tenant``, sending nothing of the server's environment (``sdk_headers``), and its
    tools (only those the tenant may use). Without a key the SDK, which wants one, gets a
    placeholder that a server without keys ignores."""
    import httpx2
    from agents import Agent, ModelSettings, OpenAIChatCompletionsModel
    from openai import AsyncOpenAI

    client = AsyncOpenAI(
        base_url=config["base_url"],
        api_key=key or PLACEHOLDER_KEY,
        default_headers=sdk_headers(key, placeholder=PLACEHOLDER_KEY),
        http_client=shared_client(tenant, http=httpx2),
        max_retries=0,
        timeout=settings.AK_AGENTS["TIMEOUT"],
    )
    try:
        tools = tools_named(config.get("tools", []), tenant=tenant)
    except UnknownTool as exc:
        raise ModelError(str(exc)) from None
    return Agent(
        name=name,
        instructions=config.get("instructions") or None,
        model=OpenAIChatCompletionsModel(model=config["model"], openai_client=client),
        model_settings=ModelSettings(
            temperature=config.get("temperature"), max_tokens=config.get("max_tokens"), include_usage=True
        ),
        tools=tools,
        handoffs=[],
    )


async def _plain(start: Any, message: str, session: SessionView, options: dict[str, Any]) -> tuple[Any, str]:
    """Run to the end (``options``: ``Runner.run``'s); the reply is the answers' texts."""
    from agents import ItemHelpers, MessageOutputItem, Runner

    result = await Runner.run(start, message, **options)
    texts = [ItemHelpers.text_message_output(i) for i in result.new_items if isinstance(i, MessageOutputItem)]
    return result, SEPARATOR.join(text for text in texts if text)


async def _streamed(start: Any, message: str, session: SessionView, options: dict[str, Any]) -> tuple[Any, str]:
    """Run streamed, passing the text of the model's answers on as it comes. The reply is what
    was passed on: the answers' texts, ``SEPARATOR`` between two of them."""
    from agents import Runner
    from openai.types.responses import ResponseCreatedEvent, ResponseTextDeltaEvent

    result = Runner.run_streamed(start, message, **options)
    pieces: list[str] = []
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
