"""The deployment's tools as plain functions, for the frameworks that wrap functions themselves
(``pydantic_ai``, ``smolagents``); ``tools.py`` makes the same functions the Agents SDK's tools.

The registry is the same (``AK_AGENTS["TOOLS"]``, ``AK_AGENTS["TOOL_TENANTS"]``): a tenant's
config names tools, never paths. A tool learns the run it works for from ``current_call()``
(``context.py``), whatever the framework; a ``pydantic_ai`` tool may take PydanticAI's
``RunContext[CallContext]`` first instead (its ``deps``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import cache
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from agents_app.frameworks.base import ConfigProblems, path_of
from agents_app.frameworks.tools import UnknownTool, tool_names

#: The JSON Schema of a config's ``tools`` (those every tenant may use are listed).
TOOL_LIST_DESCRIPTION = "Tools the deployment offers (AK_AGENTS__TOOLS), by name."


def tools_schema() -> dict[str, Any]:
    declared = tool_names()
    schema: dict[str, Any] = {"type": "array", "uniqueItems": True, "description": TOOL_LIST_DESCRIPTION}
    schema.update({"items": {"type": "string", "enum": declared}} if declared else {"maxItems": 0})
    return schema


def check_tool_names(tools: Any, problems: ConfigProblems, *, key: str = "tools") -> None:
    """The form of a list of tool names; which names a tenant may list is ``check_tenant_tools``'s."""
    if not isinstance(tools, list):
        problems.add(key, "must be a list of tool names")
        return
    declared = settings.AK_AGENTS["TOOLS"]
    for i, name in enumerate(tools):
        if not isinstance(name, str):
            problems.add(path_of(key, i), "must be a tool's name (a string)")
        elif name not in declared:
            offered = ", ".join(tool_names()) or "none"
            problems.add(path_of(key, i), f"unknown tool {name!r}; this deployment offers: {offered}")
        elif name in tools[:i]:
            problems.add(path_of(key, i), f"names the tool {name!r} twice")


def functions_named(names: list[str], *, tenant: str | None) -> list[tuple[str, Callable[..., Any]]]:
    """``(name, function)`` of each of ``names``, in order, for a run of ``tenant``'s; raises
    ``UnknownTool`` for a name the tenant may not use or whose function does not load."""
    offered = tool_names(tenant)
    for name in names:
        if name not in offered:
            raise UnknownTool(
                f"unknown tool {name!r}; this deployment offers: {', '.join(offered) or 'none'} (AK_AGENTS__TOOLS)"
            )
    return [(name, function_loaded(name)) for name in names]


def function_loaded(name: str) -> Callable[..., Any]:
    """The function of the declared tool ``name``; ``UnknownTool`` when undeclared or not loading."""
    path = settings.AK_AGENTS["TOOLS"].get(name)
    if path is None:
        raise UnknownTool(f"unknown tool {name!r} (AK_AGENTS__TOOLS)")
    return _function(name, path)


@cache
def _function(name: str, path: str) -> Callable[..., Any]:
    try:
        function = import_string(path)
    except ImportError as exc:
        raise UnknownTool(f"the tool {name!r} does not load from {path!r}: {exc}") from None
    if not callable(function):
        raise UnknownTool(f"the tool {name!r} ({path}) is not a function")
    return function


def first_parameter_annotation(function: Callable[..., Any]) -> str:
    """The text of the annotation of ``function``'s first parameter ('' without one): how a
    framework tells a tool that takes a run context from one that takes the model's arguments only."""
    parameters = list(inspect.signature(function).parameters.values())
    if not parameters or parameters[0].annotation is inspect.Parameter.empty:
        return ""
    annotation = parameters[0].annotation
    return annotation if isinstance(annotation, str) else getattr(annotation, "__name__", repr(annotation))
