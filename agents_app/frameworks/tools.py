"""The tools ``openai_agents`` agents may use: declared by the deployment, chosen by name.

``settings.AK_AGENTS["TOOLS"]`` maps a tool's name to the dotted path of a plain Python function
(sync or async; ``AK_AGENTS__TOOLS="get_weather=myco.tools.get_weather,..."``). A tenant's
config names tools, never paths: what code a run may call is the deployment's choice alone.
``AK_AGENTS["TOOL_TENANTS"]`` keeps some tools for some tenants
(``AK_AGENTS__TOOL_TENANTS="crm=acme|globex"``): to any other tenant such a tool does not exist.

A function becomes an OpenAI Agents SDK ``FunctionTool`` under its registry name. A function
whose first parameter is a ``RunContextWrapper[CallContext]`` gets the run's ``CallContext`` in
it, not from the model.

A config's ``tools`` lists entries: a tool's name, or ``{"name": NAME, "needs_approval": true}``
for a tool whose every call waits for a person's approval (the run pauses; CONTRACT.md, "Runs that
wait for a person"). ``check_tool_entries``, ``entry_names`` and ``tool_entries_schema`` read them.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from agents_app.frameworks.base import ConfigError, ConfigProblems, path_of
from agents_app.frameworks.context import open_to

#: The keys of a tool entry written as an object.
ENTRY_KEYS = frozenset({"name", "needs_approval"})


class UnknownTool(LookupError):
    """A tool name the deployment does not declare, or whose path does not load."""


def tool_names(tenant: str | None = None) -> list[str]:
    """The names a config of ``tenant``'s may list (without a tenant: those every tenant may)."""
    restricted = settings.AK_AGENTS["TOOL_TENANTS"]
    return sorted(name for name in settings.AK_AGENTS["TOOLS"] if open_to(name, tenant, restricted))


def check_tenant_tools(tools: Iterable[str], *, tenant: str | None) -> None:
    """``ConfigError`` for a tool that ``tenant`` may not use (as if the deployment had none of that
    name), by its path in the config (``tools[1]``)."""
    offered = tool_names(tenant)
    for i, name in enumerate(tools):
        if name not in offered:
            listed = ", ".join(offered) or "none"
            raise ConfigError(path_of("tools", i), f"unknown tool {name!r}; this deployment offers: {listed}")


def entry_name(entry: Any) -> Any:
    """The tool an entry of a (valid) config's ``tools`` names."""
    return entry.get("name") if isinstance(entry, dict) else entry


def entry_names(entries: Iterable[Any]) -> list[Any]:
    """The tools the entries of a (valid) config's ``tools`` name, in order."""
    return [entry_name(entry) for entry in entries]


def needs_approval(entry: Any) -> bool:
    """Whether an entry of a (valid) config's ``tools`` asks for a person's approval of each call."""
    return isinstance(entry, dict) and entry.get("needs_approval") is True


def check_tool_entries(tools: Any, problems: ConfigProblems) -> None:
    """The form of a config's ``tools`` (each a declared tool's name, or ``{"name", "needs_approval"}``,
    no tool twice); which names a tenant may list is for ``check_tenant`` to say."""
    if not isinstance(tools, list):
        problems.add("tools", "must be a list of tool names")
        return
    declared = settings.AK_AGENTS["TOOLS"]  # those kept for some tenants too: check_tenant narrows
    seen: set[str] = set()
    for i, entry in enumerate(tools):
        path = path_of("tools", i)
        if isinstance(entry, dict):
            for key in sorted(set(entry) - ENTRY_KEYS):
                problems.add(path_of(path, key), "unknown option of a tool (name, needs_approval)")
            if not isinstance(entry.get("needs_approval", False), bool):
                problems.add(path_of(path, "needs_approval"), "must be true or false")
            path, name = path_of(path, "name"), entry.get("name")
        else:
            name = entry
        if not isinstance(name, str):
            problems.add(path, 'must be a tool\'s name (a string), or {"name": ..., "needs_approval": true}')
        elif name not in declared:
            offered = ", ".join(tool_names()) or "none"
            problems.add(path, f"unknown tool {name!r}; this deployment offers: {offered}")
        elif name in seen:
            problems.add(path, f"names the tool {name!r} twice")
        else:
            seen.add(name)


def tool_entries_schema(declared: list[str]) -> dict[str, Any]:
    """The JSON Schema of ``tools`` (``check_tool_entries``'s), ``declared`` the names any tenant may list."""
    schema: dict[str, Any] = {
        "type": "array",
        "uniqueItems": True,
        "description": 'Tools the deployment offers, by name; {"name": NAME, "needs_approval": true} for a tool'
        " whose every call waits for a person's approval (the run pauses). A tool is named once.",
    }
    if not declared:
        return {**schema, "maxItems": 0}
    name = {"type": "string", "enum": declared}
    entry = {
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "properties": {"name": name, "needs_approval": {"type": "boolean"}},
    }
    return {**schema, "items": {"anyOf": [name, entry]}}


def tools_named(entries: Iterable[Any], *, tenant: str | None) -> list[Any]:
    """The ``FunctionTool`` of each of ``entries`` (a valid config's ``tools``), in order, for a
    run of ``tenant``'s; raises ``UnknownTool`` for a name the deployment does not declare or keeps
    for other tenants (alike: the message names the tools the tenant may use, never the others)."""
    entries = list(entries)
    offered = tool_names(tenant)
    for name in entry_names(entries):
        if name not in offered:
            raise UnknownTool(
                f"unknown tool {name!r}; this deployment offers: {', '.join(offered) or 'none'} (AK_AGENTS__TOOLS)"
            )
    return [tool_loaded(entry_name(entry), approval=needs_approval(entry)) for entry in entries]


def tool_loaded(name: str, *, approval: bool = False) -> Any:
    """The ``FunctionTool`` of the declared tool ``name``, whichever tenants may use it (with
    ``approval``: one whose calls wait for a person's approval, the SDK's ``needs_approval``);
    raises ``UnknownTool`` when it is not declared or does not load."""
    path = settings.AK_AGENTS["TOOLS"].get(name)
    if path is None:
        raise UnknownTool(f"unknown tool {name!r} (AK_AGENTS__TOOLS)")
    return _tool(name, path, approval)


@cache
def _tool(name: str, path: str, approval: bool) -> Any:
    """The function at ``path`` as a ``FunctionTool`` named ``name`` (made once per process)."""
    from agents import function_tool

    try:
        function = import_string(path)
    except ImportError as exc:
        raise UnknownTool(f"the tool {name!r} does not load from {path!r}: {exc}") from None
    if not callable(function):
        raise UnknownTool(f"the tool {name!r} ({path}) is not a function")
    try:
        return function_tool(function, name_override=name, needs_approval=approval)
    except Exception as exc:  # the SDK refuses its signature (UserError, pydantic's errors)
        raise UnknownTool(f"the tool {name!r} ({path}) cannot be a tool: {exc}") from None
