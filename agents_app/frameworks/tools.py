"""The tools ``openai_agents`` agents may use: declared by the deployment, chosen by name.

``settings.AK_AGENTS["TOOLS"]`` maps a tool's name to the dotted path of a plain Python function
(sync or async; ``AK_AGENTS__TOOLS="get_weather=myco.tools.get_weather,..."``). A tenant's
config names tools, never paths: what code a run may call is the deployment's choice alone.

    tool_registry()                 # {"get_weather": FunctionTool(name="get_weather", ...)}
    tools_named(["get_weather"])    # [FunctionTool(...)], or UnknownTool

A function becomes an OpenAI Agents SDK ``FunctionTool`` (its signature is the tool's parameters,
its docstring the description) under its registry name; a sync one runs in a thread, off the
event loop. A tool that raises answers the model with the error's message, as the SDK does. The
SDK is imported by the first call, not with this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string


class UnknownTool(LookupError):
    """A tool name the deployment does not declare, or whose path does not load."""


def tool_names() -> list[str]:
    """The names a config's ``tools`` may list."""
    return sorted(settings.AK_AGENTS["TOOLS"])


def tool_registry() -> dict[str, Any]:
    """Every declared tool, by name, as a ``FunctionTool``. Raises ``UnknownTool`` for a path
    that does not load."""
    return {name: _tool(name, path) for name, path in settings.AK_AGENTS["TOOLS"].items()}


def tools_named(names: Iterable[str]) -> list[Any]:
    """The ``FunctionTool`` of each of ``names``, in order; raises ``UnknownTool``."""
    declared = settings.AK_AGENTS["TOOLS"]
    tools = []
    for name in names:
        if name not in declared:
            raise UnknownTool(f"the tool {name!r} is not one this deployment declares (AK_AGENTS__TOOLS)")
        tools.append(_tool(name, declared[name]))
    return tools


@cache
def _tool(name: str, path: str) -> Any:
    """The function at ``path`` as a ``FunctionTool`` named ``name`` (made once per process)."""
    from agents import function_tool

    try:
        function = import_string(path)
    except ImportError as exc:
        raise UnknownTool(f"the tool {name!r} does not load from {path!r}: {exc}") from None
    if not callable(function):
        raise UnknownTool(f"the tool {name!r} ({path}) is not a function")
    try:
        return function_tool(function, name_override=name)
    except Exception as exc:  # the SDK refuses its signature (UserError, pydantic's errors)
        raise UnknownTool(f"the tool {name!r} ({path}) cannot be a tool: {exc}") from None
