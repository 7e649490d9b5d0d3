"""The tools ``openai_agents`` agents may use: declared by the deployment, chosen by name.

``settings.AK_AGENTS["TOOLS"]`` maps a tool's name to the dotted path of a plain Python function
(sync or async; ``AK_AGENTS__TOOLS="get_weather=myco.tools.get_weather,..."``). A tenant's
config names tools, never paths: what code a run may call is the deployment's choice alone.
``AK_AGENTS["TOOL_TENANTS"]`` keeps some tools for some tenants
(``AK_AGENTS__TOOL_TENANTS="crm=acme|globex"``): to any other tenant such a tool does not exist.

A function becomes an OpenAI Agents SDK ``FunctionTool`` under its registry name. A function
whose first parameter is a ``RunContextWrapper[CallContext]`` gets the run's ``CallContext`` in
it, not from the model.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from agents_app.frameworks.context import open_to


class UnknownTool(LookupError):
    """A tool name the deployment does not declare, or whose path does not load."""


def tool_names(tenant: str | None = None) -> list[str]:
    """The names a config of ``tenant``'s may list (without a tenant: those every tenant may)."""
    restricted = settings.AK_AGENTS["TOOL_TENANTS"]
    return sorted(name for name in settings.AK_AGENTS["TOOLS"] if open_to(name, tenant, restricted))


def tools_named(names: Iterable[str], *, tenant: str | None) -> list[Any]:
    """The ``FunctionTool`` of each of ``names``, in order, for a run of ``tenant``'s; raises
    ``UnknownTool`` for a name the deployment does not declare or keeps for other tenants (alike:
    the message names the tools the tenant may use, never the others)."""
    offered = tool_names(tenant)
    for name in names:
        if name not in offered:
            raise UnknownTool(
                f"unknown tool {name!r}; this deployment offers: {', '.join(offered) or 'none'} (AK_AGENTS__TOOLS)"
            )
    return [tool_loaded(name) for name in names]


def tool_loaded(name: str) -> Any:
    """The ``FunctionTool`` of the declared tool ``name``, whichever tenants may use it; raises
    ``UnknownTool`` when it is not declared or does not load."""
    path = settings.AK_AGENTS["TOOLS"].get(name)
    if path is None:
        raise UnknownTool(f"unknown tool {name!r} (AK_AGENTS__TOOLS)")
    return _tool(name, path)


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
