"""What a framework adapter is: the contract between the runner and an agent library."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Protocol

from sessions_app.core import SessionView


class AgentLike(Protocol):
    """Anything with a name, a framework and a config: the Agent model, or an ``AgentSpec``."""

    name: str
    framework: str
    config: dict[str, Any]


@dataclass(frozen=True)
class AgentSpec:
    """An agent described in code, for the Python API: ``AgentSpec("echo", "echo")``."""

    name: str
    framework: str
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Usage:
    """Tokens a model reported for a run (summed over the run's model calls)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens)

    def as_dict(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}


@dataclass(frozen=True)
class Reply:
    """What ``Framework.run`` returns when it has more to say than the reply's text."""

    text: str
    usage: Usage | None = None
    #: The agent that wrote the reply, when it is not the one that was run (after a handoff).
    agent: str | None = None


class ConfigError(ValueError):
    """An agent's config is not valid for its framework. ``field`` names the bad key."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


class Framework(ABC):
    """One adapter per agent library.

    ``run`` gets the session as a ``SessionView``: the recent history, the counts of messages by
    role, the agent's own state and the shared state. Whatever it writes to those two maps, and
    the items it appends (tool calls, tool results, handoffs), are committed with the run's
    messages, atomically, and only if the run completes: an adapter that raises commits nothing.
    It streams its reply with ``session.emit_delta`` as the reply is produced.
    """

    name: str = ""
    #: How many recent messages ``run`` reads from ``session.messages``: the run's load reads no
    #: more than this (nor than ``AK_SESSION__WINDOW``). None: as many as the setting allows; 0
    #: for an adapter that needs no history (counts and state always come).
    window: int | None = None

    def validate_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """Return the config, normalised; raise ``ConfigError`` naming the bad key."""
        if not isinstance(config, dict):
            raise ConfigError("config", "must be an object")
        for key, value in config.items():
            if _holds_nul(key) or _holds_nul(value):  # PostgreSQL's JSON cannot hold one
                raise ConfigError(key, "must not hold a null character")
        return config

    def config_schema(self) -> dict[str, Any]:
        """The JSON Schema (OpenAPI 3.0's dialect) of the configs that ``validate_config`` and
        ``check_runnable`` accept, for the API's document: a framework states it exactly, so that
        clients and schema-driven tests know what is valid. By default: any object."""
        return {"type": "object", "description": "Checked by the framework when the agent is saved."}

    def window_for(self, config: dict[str, Any]) -> int | None:
        """How many recent entries a run of an agent with ``config`` reads (see ``window``)."""
        return self.window

    def check_runnable(self, config: dict[str, Any]) -> None:
        """Raise ``ConfigError`` if a run of an agent with this (validated) config cannot start
        here: an optional library missing, a model server the platform will not call. Called
        when an agent is saved; a run checks again."""
        return None  # nothing to check unless a framework says otherwise

    def check_tenant(self, config: dict[str, Any], *, tenant: str | None) -> None:
        """Raise ``ConfigError`` if the (validated) config names a tool or a graph that ``tenant``
        may not use (``AK_AGENTS__TOOL_TENANTS``, ``AK_AGENTS__GRAPH_TENANTS``), as if the
        deployment had none of that name. None: a tenant that may use only what all may. Called
        when an agent is saved; a run checks again."""
        return None  # nothing is kept for some tenants unless a framework says otherwise

    def preload(self) -> None:
        """Import what the adapter's runs will need (its library, if installed) now, at a
        process's start, rather than in its first run: importing an SDK takes a second or more of
        CPU, during which the process's event loop, and every run on it, would stall."""
        return None

    @abstractmethod
    async def run(self, agent: AgentLike, session: SessionView, message: str) -> str | Reply:
        """Answer ``message``: the reply's text, or a ``Reply`` with the tokens it used."""
