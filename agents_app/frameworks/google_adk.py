"""``google_adk``: an LLM agent of Google's Agent Development Kit (ADK), configured by data.

Config::

    {"instructions": "You know the weather.",
     "base_url": "https://api.openai.com/v1", "model": "gpt-4o-mini", "api_key": {"secret": "openai"},
     "temperature": 0.2, "max_tokens": 512,
     "tools": ["get_weather", "refund"], "approval": ["refund"], "history": 20}

A run drives ADK's ``Runner`` on an ``LlmAgent`` whose model is ADK's ``OpenAILlm`` (Chat
Completions) over an ``AsyncOpenAI`` client on ``agents_app.outbound``'s guarded client of the
tenant. ``tools`` are names the deployment declares (``AK_AGENTS__TOOLS``); a function whose first
parameter is annotated ``CallContext`` gets the run's context there, not from the model.
``approval`` lists the tools whose every call waits for a person (ADK's tool confirmation): the run
pauses (``Pause(kind="approval")``) and ``resume`` goes on with ADK's confirmation answer.

The run's ADK session is served from the platform's session by ``PlatformSessionService``
(``google_adk_session``): ADK's events and its session state are the agent's own state, its
``user:`` and ``app:`` keys the session's shared state, its ``temp:`` keys nowhere. ``history``
is how many of the agent's latest ADK events are kept (and so shown to the model). Tool calls and
results are also the run's items. A ``compaction`` replaces the events of the turns the session's
latest summary covers with one user event carrying it (``PlatformSessionService.compact``). Any
failure raises ``ModelError``: nothing is committed.
"""

from __future__ import annotations

import contextlib
import importlib.util
from typing import Any, Final

from django.conf import settings
from django.utils.module_loading import import_string

from agents_app.frameworks.base import (
    AgentLike,
    ConfigError,
    ConfigProblems,
    Pause,
    Reply,
    Resume,
    check_unknown_keys,
    path_of,
)
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
    validate_int,
    validate_model_keys,
)
from agents_app.frameworks.tools import check_tenant_tools, tool_names
from sessions_app.core import SessionView

KEYS: Final = MODEL_KEYS | {"instructions", "tools", "approval", "history"}
NOT_INSTALLED: Final = "Google ADK is not installed: pip install -r requirements/google_adk.txt"


def adk_installed() -> bool:
    return importlib.util.find_spec("google.adk") is not None


class GoogleADKFramework(ModelFramework):
    name = "google_adk"

    def config_schema(self) -> dict[str, Any]:
        declared = tool_names()  # those every tenant may use: some may be kept for some tenants
        names: dict[str, Any] = {"type": "array", "uniqueItems": True}
        names.update({"items": {"type": "string", "enum": declared}} if declared else {"maxItems": 0})
        return model_config_schema(
            instructions=TEXT_SCHEMA,
            tools={**names, "description": "Tools the deployment offers."},
            approval={**names, "description": "Those of `tools` whose every call waits for a person."},
            history=HISTORY_SCHEMA,
        )

    def check_config(self, config: dict[str, Any], problems: ConfigProblems) -> None:
        check_unknown_keys(config, KEYS, self.name, problems)
        validate_model_keys(config, problems)
        check_text(config, "instructions", problems)
        tools = config.get("tools", [])
        _check_names(tools, "tools", problems)
        approval = config.get("approval", [])
        _check_names(approval, "approval", problems)
        if isinstance(tools, list) and isinstance(approval, list):
            for i, name in enumerate(approval):
                if isinstance(name, str) and name not in tools:
                    problems.add(path_of("approval", i), f"names {name!r}, which is not one of the agent's tools")
        validate_int(config, "history", problems, default=DEFAULT_HISTORY, low=0, high=MAX_HISTORY)

    def check_runnable(self, config: dict[str, Any]) -> None:
        if not adk_installed():
            raise ConfigError("framework", NOT_INSTALLED)
        for i, name in enumerate(config.get("tools", [])):
            why = _unloadable(name)
            if why is not None:
                raise ConfigError(path_of("tools", i), why)
        super().check_runnable(config)

    def check_tenant(self, config: dict[str, Any], *, tenant: str | None) -> None:
        check_tenant_tools(config.get("tools", []), tenant=tenant)

    def preload(self) -> None:
        import httpx2  # noqa: F401
        from google.adk.integrations.openai import OpenAILlm  # noqa: F401
        from google.adk.workflow import Workflow  # noqa: F401 (what a first run would import: a second)

        import agents_app.frameworks.google_adk_run  # noqa: F401 (ADK's runner, agents, tools and sessions)

        for name in settings.AK_AGENTS["TOOLS"]:
            with contextlib.suppress(ImportError):  # refused when an agent names it
                import_string(settings.AK_AGENTS["TOOLS"][name])

    def window_for(self, config: dict[str, Any]) -> int:
        return 0  # the agent keeps its own history: ADK's events, in its state

    def shown_for(self, config: dict[str, Any]) -> int:
        return config.get("history", DEFAULT_HISTORY)  # its latest ADK events

    async def run(self, agent: AgentLike, session: SessionView, message: str) -> Reply | Pause:
        if not adk_installed():
            raise ModelError(NOT_INSTALLED)
        from agents_app.frameworks.google_adk_run import ADKRun

        return await (await ADKRun.start(agent, session)).ask(message)

    async def resume(self, agent: AgentLike, session: SessionView, pause: Pause, answer: Resume) -> Reply | Pause:
        if not adk_installed():
            raise ModelError(NOT_INSTALLED)
        from agents_app.frameworks.google_adk_run import ADKRun

        return await (await ADKRun.start(agent, session)).confirm(answer)


def _check_names(names: Any, key: str, problems: ConfigProblems) -> None:
    """The form of a list of tool names; which names a tenant may list is ``check_tenant``'s."""
    if not isinstance(names, list):
        problems.add(key, "must be a list of tool names")
        return
    declared = settings.AK_AGENTS["TOOLS"]
    for i, name in enumerate(names):
        if not isinstance(name, str):
            problems.add(path_of(key, i), "must be a tool's name (a string)")
        elif name not in declared:
            offered = ", ".join(tool_names()) or "none"
            problems.add(path_of(key, i), f"unknown tool {name!r}; this deployment offers: {offered}")
        elif name in names[:i]:
            problems.add(path_of(key, i), f"names the tool {name!r} twice")


def _unloadable(name: str) -> str | None:
    """Why the declared tool ``name`` cannot be a tool here, or None."""
    path = settings.AK_AGENTS["TOOLS"].get(name)
    if path is None:
        return f"unknown tool {name!r} (AK_AGENTS__TOOLS)"
    try:
        function = import_string(path)
    except ImportError as exc:
        return f"the tool {name!r} does not load from {path!r}: {exc}"
    if not callable(function):
        return f"the tool {name!r} ({path}) is not a function"
    return None
