"""The config of a ``crewai`` agent: its keys, their checks and their JSON Schema.

An agent (``role``, ``goal``, ``backstory``, ``tools``) that answers each message, or a small crew
(``agents`` and ``tasks``, run in order). A task's ``description`` and ``expected_output`` may
name ``{message}`` (the new message) and ``{history}`` (the session's latest messages, as lines
``role: text``); no other placeholder.
"""

from __future__ import annotations

import re
from typing import Any, Final

from django.conf import settings

from agents_app import patterns
from agents_app.frameworks.base import ConfigProblems, check_unknown_keys, path_of
from agents_app.frameworks.model import (
    DEFAULT_HISTORY,
    HISTORY_SCHEMA,
    MAX_HISTORY,
    MODEL_KEYS,
    MODEL_KEYS_SCHEMA,
    validate_int,
    validate_model_keys,
)
from agents_app.frameworks.tools import tool_names

MAX_AGENTS: Final = 8
MAX_TASKS: Final = 8
DEFAULT_MAX_ITER: Final = 10
MAX_MAX_ITER: Final = 50
PERSONA: Final = ("role", "goal", "backstory")
LONE_KEYS: Final = (*PERSONA, "tools", "expected_output", "human_input")
KEYS: Final = MODEL_KEYS | {*LONE_KEYS, "agents", "tasks", "history", "max_iter"}
AGENT_KEYS: Final = frozenset({*PERSONA, "tools"})
TASK_KEYS: Final = frozenset({"description", "expected_output", "agent", "human_input"})
#: The placeholders a text may name (CrewAI's ``{name}`` interpolation of the run's inputs).
PLACEHOLDERS: Final = ("message", "history")
PLACEHOLDER: Final = re.compile(r"\{([A-Za-z_][A-Za-z0-9_\-]*)\}")
#: The single agent's task, when the config gives none.
DEFAULT_EXPECTED_OUTPUT: Final = "The reply to the user's latest message."


def check(config: dict[str, Any], problems: ConfigProblems, framework: str) -> None:
    """Add each bad key of ``config`` to ``problems``."""
    check_unknown_keys(config, KEYS, framework, problems)
    validate_model_keys(config, problems)
    validate_int(config, "history", problems, default=DEFAULT_HISTORY, low=0, high=MAX_HISTORY)
    validate_int(config, "max_iter", problems, default=DEFAULT_MAX_ITER, low=1, high=MAX_MAX_ITER)
    crew = "agents" in config or "tasks" in config
    if crew:
        for key in LONE_KEYS:
            if key in config:
                problems.add(key, "a crew's agents and tasks say this: give agents and tasks, or role, goal, backstory")
        _check_crew(config, problems)
        return
    for key in PERSONA:
        _text(config, key, problems, required=True)
    _text(config, "expected_output", problems, required=False)
    _check_tools(config.get("tools", []), "tools", problems)
    if not isinstance(config.get("human_input", False), bool):
        problems.add("human_input", "must be true or false")


def _check_crew(config: dict[str, Any], problems: ConfigProblems) -> None:
    agents, tasks = config.get("agents"), config.get("tasks")
    roles: list[str] = []
    if not isinstance(agents, list) or not 1 <= len(agents) <= MAX_AGENTS:
        problems.add("agents", f"must be a list of 1 to {MAX_AGENTS} agents: {{role, goal, backstory, tools}}")
    else:
        for i, agent in enumerate(agents):
            where = path_of("agents", i)
            if not isinstance(agent, dict):
                problems.add(where, "must be an object: {role, goal, backstory, tools}")
                continue
            for key in sorted(set(agent) - AGENT_KEYS):
                problems.add(path_of(where, key), "unknown key of a crew's agent")
            for key in PERSONA:
                _text(agent, key, problems, required=True, where=where)
            _check_tools(agent.get("tools", []), path_of(where, "tools"), problems)
            if isinstance(agent.get("role"), str):
                if agent["role"] in roles:
                    problems.add(path_of(where, "role"), f"names the role {agent['role']!r} twice")
                roles.append(agent["role"])
    if not isinstance(tasks, list) or not 1 <= len(tasks) <= MAX_TASKS:
        problems.add("tasks", f"must be a list of 1 to {MAX_TASKS} tasks: {{description, expected_output, agent}}")
        return
    for i, task in enumerate(tasks):
        where = path_of("tasks", i)
        if not isinstance(task, dict):
            problems.add(where, "must be an object: {description, expected_output, agent, human_input}")
            continue
        for key in sorted(set(task) - TASK_KEYS):
            problems.add(path_of(where, key), "unknown key of a crew's task")
        _text(task, "description", problems, required=True, where=where)
        _text(task, "expected_output", problems, required=True, where=where)
        if task.get("agent") not in roles and isinstance(agents, list):
            problems.add(path_of(where, "agent"), f"must be the role of one of the crew's agents: {', '.join(roles)}")
        if not isinstance(task.get("human_input", False), bool):
            problems.add(path_of(where, "human_input"), "must be true or false")
    descriptions = [task.get("description") for task in tasks if isinstance(task, dict)]
    if not any(isinstance(text, str) and "{message}" in text for text in descriptions):
        problems.add("tasks", "no task's description names {message}: the crew would never see the user's message")


def _text(holder: dict[str, Any], key: str, problems: ConfigProblems, *, required: bool, where: str = "") -> None:
    """A text of the config: not blank, naming no placeholder but ``PLACEHOLDERS``."""
    path = path_of(where, key)
    if key not in holder:
        if required:
            problems.add(path, "required")
        return
    value = holder[key]
    if not isinstance(value, str) or not value.strip():
        problems.add(path, "must be text that is not blank")
        return
    for name in PLACEHOLDER.findall(value):
        if name not in PLACEHOLDERS:
            problems.add(path, f"names the placeholder {{{name}}}; only {{message}} and {{history}} are filled")


def _check_tools(tools: Any, path: str, problems: ConfigProblems) -> None:
    """The form of a ``tools`` list; which names a tenant may use is ``check_tenant``'s to say."""
    if not isinstance(tools, list):
        problems.add(path, "must be a list of tool names")
        return
    declared = settings.AK_AGENTS["TOOLS"]
    for i, name in enumerate(tools):
        if not isinstance(name, str) or name not in declared:
            offered = ", ".join(tool_names()) or "none"
            problems.add(path_of(path, i), f"unknown tool {name!r}; this deployment offers: {offered}")
        elif name in tools[:i]:
            problems.add(path_of(path, i), f"names the tool {name!r} twice")


def tool_lists(config: dict[str, Any]) -> dict[str, list[str]]:
    """The tools each agent of a (valid) config names, by the path of its list."""
    if "agents" in config:
        return {path_of(path_of("agents", i), "tools"): a.get("tools", []) for i, a in enumerate(config["agents"])}
    return {"tools": config.get("tools", [])}


def schema() -> dict[str, Any]:
    """The JSON Schema of a valid config."""
    declared = tool_names()
    tools: dict[str, Any] = {"type": "array", "uniqueItems": True, "description": "Tools the deployment offers."}
    tools.update({"items": {"type": "string", "enum": declared}} if declared else {"maxItems": 0})
    text = {"type": "string", "pattern": patterns.anchored(patterns.NOT_BLANK)}
    agent = {
        "type": "object",
        "additionalProperties": False,
        "required": list(PERSONA),
        "properties": {"role": text, "goal": text, "backstory": text, "tools": tools},
    }
    task = {
        "type": "object",
        "additionalProperties": False,
        "required": ["description", "expected_output", "agent"],
        "properties": {
            "description": text,
            "expected_output": text,
            "agent": {"type": "string", "description": "The role of one of the crew's agents."},
            "human_input": {"type": "boolean"},
        },
    }
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["base_url", "model"],
        "description": "An agent (role, goal, backstory, tools) or a crew (agents and tasks, run in order).",
        "properties": {
            **MODEL_KEYS_SCHEMA,
            "role": text,
            "goal": text,
            "backstory": text,
            "tools": tools,
            "expected_output": text,
            "human_input": {"type": "boolean"},
            "agents": {"type": "array", "minItems": 1, "maxItems": MAX_AGENTS, "items": agent},
            "tasks": {"type": "array", "minItems": 1, "maxItems": MAX_TASKS, "items": task},
            "history": HISTORY_SCHEMA,
            "max_iter": {"type": "integer", "minimum": 1, "maximum": MAX_MAX_ITER},
        },
    }
