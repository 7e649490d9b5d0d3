"""``smolagents``: a smolagents ``ToolCallingAgent``, configured by data, not code.

Config::

    {"instructions": "You know the weather.",
     "base_url": "https://api.openai.com/v1", "model": "gpt-4o-mini", "api_key": {"secret": "openai"},
     "temperature": 0.2, "max_tokens": 512, "tools": ["get_weather"], "history": 20, "max_steps": 10}

The model keys are ``openai_chat``'s: smolagents' ``OpenAIModel`` given a client whose calls go
through ``agents_app.outbound`` (the tenant's guarded async client, on the run's event loop).
``tools`` are names the deployment declares (``plain_tools.py``; a tool reads its run from
``current_call()``). The agent answers with smolagents' ``final_answer`` tool; ``max_steps``
bounds its steps. ``"agent": "code"`` (a ``CodeAgent``, which executes the Python its model writes)
is refused unless the deployment names a sandbox (``AK_AGENTS__SMOLAGENTS_SANDBOX``, one of
smolagents' remote executors): no model-written code runs on the platform's machines.

smolagents is synchronous: a run works in a thread while the event loop serves the model calls.
The session's latest ``history`` text messages become memory steps (a ``TaskStep`` per user
message, an ``ActionStep`` per answer); the run's memory steps become its items (each tool call
and its observation, an error a step met as the result of its call). smolagents streams steps,
not the reply's text (the reply is the ``final_answer`` call's argument): a streamed run gets its
reply as one piece. The tokens of every step are recorded, and the agent's own state counts its
steps on the session (``steps``). Any failure raises ``ModelError``:
the run fails and commits nothing.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import importlib.resources
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

from django.conf import settings

from agents_app.frameworks.base import (
    AgentLike,
    ConfigError,
    ConfigProblems,
    Reply,
    check_unknown_keys,
)
from agents_app.frameworks.context import call_context, calling_for
from agents_app.frameworks.model import (
    DEFAULT_HISTORY,
    HISTORY_SCHEMA,
    MAX_HISTORY,
    MODEL_KEYS,
    TEXT_SCHEMA,
    ModelError,
    ModelFramework,
    api_key,
    check_text,
    model_config_schema,
    openai_client,
    redacted,
    sdk_failure,
    validate_int,
    validate_model_keys,
)
from agents_app.frameworks.plain_tools import (
    check_tool_names,
    function_loaded,
    functions_named,
    tools_schema,
)
from agents_app.frameworks.smolagents_steps import (
    LoopClient,
    history_steps,
    registry_tool,
    step_entries,
    steps_usage,
)
from agents_app.frameworks.tools import UnknownTool, check_tenant_tools
from infra.io_threads import PerProcess
from sessions_app.core import SessionView

DEFAULT_MAX_STEPS = 10
MAX_MAX_STEPS = 50
AGENT_KINDS = ("tool_calling", "code")
KEYS = MODEL_KEYS | {"instructions", "tools", "history", "max_steps", "agent"}
NOT_INSTALLED = "smolagents is not installed: pip install -r requirements/smolagents.txt"
NO_SANDBOX = (
    "a CodeAgent executes the Python its model writes: refused, since this deployment names no sandbox for it"
    " (AK_AGENTS__SMOLAGENTS_SANDBOX); use the tool-calling agent"
)
#: smolagents runs a process works at once (each holds a thread while it waits for its model); more wait.
RUN_THREADS = 32
#: The threads smolagents runs work in: their own, not the pool of the process's blocking calls.
run_threads = PerProcess(lambda: ThreadPoolExecutor(max_workers=RUN_THREADS, thread_name_prefix="ak-smolagents"))
#: The agent's own state: how many steps (model calls) its runs on the session have taken.
STEPS = "steps"


class SmolagentsFramework(ModelFramework):
    name = "smolagents"

    def config_schema(self) -> dict[str, Any]:
        return model_config_schema(
            instructions=TEXT_SCHEMA,
            tools=tools_schema(),
            history=HISTORY_SCHEMA,
            max_steps={"type": "integer", "minimum": 1, "maximum": MAX_MAX_STEPS},
            agent={
                "type": "string",
                "enum": list(AGENT_KINDS),
                "description": "tool_calling (default); code only where the deployment names a sandbox.",
            },
        )

    def check_config(self, config: dict[str, Any], problems: ConfigProblems) -> None:
        check_unknown_keys(config, KEYS, self.name, problems)
        validate_model_keys(config, problems)
        check_text(config, "instructions", problems)
        check_tool_names(config.get("tools", []), problems)
        validate_int(config, "history", problems, default=DEFAULT_HISTORY, low=0, high=MAX_HISTORY)
        validate_int(config, "max_steps", problems, default=DEFAULT_MAX_STEPS, low=1, high=MAX_MAX_STEPS)
        kind = config.get("agent", "tool_calling")
        if kind not in AGENT_KINDS:
            problems.add("agent", f"must be one of: {', '.join(AGENT_KINDS)}")
        elif kind == "code" and not settings.AK_AGENTS["SMOLAGENTS_SANDBOX"]:
            problems.add("agent", NO_SANDBOX)

    def check_runnable(self, config: dict[str, Any]) -> None:
        try:
            import smolagents  # noqa: F401
        except ImportError:
            raise ConfigError("framework", NOT_INSTALLED) from None
        for i, name in enumerate(config.get("tools", [])):
            try:
                registry_tool(name, function_loaded(name), loop=None)
            except UnknownTool as exc:
                raise ConfigError(f"tools[{i}]", str(exc)) from None
        super().check_runnable(config)

    def check_tenant(self, config: dict[str, Any], *, tenant: str | None) -> None:
        check_tenant_tools(config.get("tools", []), tenant=tenant)

    def preload(self) -> None:
        import smolagents  # noqa: F401

    def window_for(self, config: dict[str, Any]) -> int:
        return 2 * config.get("history", DEFAULT_HISTORY)

    async def run(self, agent: AgentLike, session: SessionView, message: str) -> Reply:
        """Run a fresh smolagents agent, its memory seeded with the session's latest messages."""
        try:
            import smolagents  # noqa: F401
        except ImportError:
            raise ModelError(NOT_INSTALLED) from None
        config = agent.config
        if config.get("agent") == "code" and not settings.AK_AGENTS["SMOLAGENTS_SANDBOX"]:
            raise ModelError(NO_SANDBOX)
        context = call_context(agent, session)
        key = await api_key(session, config)
        loop = asyncio.get_running_loop()
        smol = _agent(config, key, context.tenant, loop)
        smol.memory.steps.extend(history_steps(session.text_messages(), config.get("history", DEFAULT_HISTORY)))
        seeded = len(smol.memory.steps)
        max_steps = config.get("max_steps", DEFAULT_MAX_STEPS)
        try:
            with calling_for(context):
                work = contextvars.copy_context()  # the tools' current_call(), the logs' context
                answer = await loop.run_in_executor(run_threads(), work.run, _run, smol, message, max_steps)
        except asyncio.CancelledError:
            smol.interrupt()  # the thread stops at its next step
            raise
        except Exception as exc:
            raise ModelError(redacted(_failure(exc), key)) from None
        steps = smol.memory.steps[seeded:]
        for kind, data, content in step_entries(steps):
            session.append(kind, data, content=content)
        taken = sum(1 for step in steps if type(step).__name__ == "ActionStep")
        session.set(STEPS, session.get(STEPS, 0) + taken)
        text = answer if isinstance(answer, str) else str(answer)
        return Reply(text, steps_usage(steps))


def _run(smol: Any, message: str, max_steps: int) -> Any:
    """The agent's run to its final answer (in a worker thread), keeping the memory it was given."""
    return smol.run(message, reset=False, max_steps=max_steps)


def _agent(config: dict[str, Any], key: str | None, tenant: str, loop: asyncio.AbstractEventLoop) -> Any:
    """The smolagents agent for ``config``: its model over the tenant's guarded client, its tools."""
    from smolagents import CodeAgent, OpenAIModel, ToolCallingAgent
    from smolagents.monitoring import LogLevel

    client = openai_client(config, tenant=tenant, key=key)
    options = {name: config[name] for name in ("temperature", "max_tokens") if config.get(name) is not None}
    # Messages as plain text, not lists of parts: the SDK's request transform walks every part.
    model = OpenAIModel(
        model_id=config["model"], client=LoopClient(client, loop), retry=False, flatten_messages_as_text=True, **options
    )
    try:
        tools = [
            registry_tool(name, f, loop=loop) for name, f in functions_named(config.get("tools", []), tenant=tenant)
        ]
    except UnknownTool as exc:
        raise ModelError(str(exc)) from None
    common = {
        "tools": tools,
        "model": model,
        "instructions": config.get("instructions") or None,
        "max_steps": config.get("max_steps", DEFAULT_MAX_STEPS),
        "verbosity_level": LogLevel.OFF,
    }
    if config.get("agent") == "code":
        return CodeAgent(executor_type=settings.AK_AGENTS["SMOLAGENTS_SANDBOX"], **common)
    return ToolCallingAgent(prompt_templates=copy.deepcopy(_prompt_templates("toolcalling_agent.yaml")), **common)


@cache
def _prompt_templates(name: str) -> dict[str, Any]:
    """smolagents' own prompt templates (``smolagents.prompts``), parsed once per process rather
    than by every agent made."""
    import yaml

    return yaml.safe_load(importlib.resources.files("smolagents.prompts").joinpath(name).read_text())


def _failure(exc: BaseException) -> str:
    """What failed, for the run's error (the caller takes the API key out of it)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:  # smolagents wraps the SDK's errors
        found = sdk_failure(current)
        if found:
            return found
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return f"the agent failed: {type(exc).__name__}: {str(exc)[:300]}"
