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


class ConfigError(ValueError):
    """An agent's config is not valid for its framework. ``field`` names the bad key."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Framework(ABC):
    """One adapter per agent library.

    ``run`` gets the session as a ``SessionView``: the recent history, the counts of messages by
    role, the agent's own state and the shared state. Whatever it writes to those two maps is
    committed with the run's messages, atomically, and only if the run completes.
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
        return config

    @abstractmethod
    async def run(self, agent: AgentLike, session: SessionView, message: str) -> str:
        """Answer ``message`` and return the reply text."""
