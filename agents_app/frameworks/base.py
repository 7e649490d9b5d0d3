"""What a framework adapter is: the contract between the runner and an agent library."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.conf import settings

from agents_app.compaction.config import COMPACTION, check_compaction
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
    #: Of ``prompt_tokens``, those the model server reports it had cached (priced apart).
    cached_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        counted = {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}
        return counted | ({"cached_tokens": self.cached_tokens} if self.cached_tokens else {})


@dataclass(frozen=True)
class Reply:
    """What ``Framework.run`` returns when it has more to say than the reply's text."""

    text: str
    usage: Usage | None = None
    #: The agent that wrote the reply, when it is not the one that was run (after a handoff).
    agent: str | None = None


@dataclass(frozen=True)
class ApprovalRequest:
    """One tool call that waits for a person's approval (CONTRACT.md, "Runs that wait")."""

    id: str
    tool: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Pause:
    """What ``Framework.run`` (or ``resume``) returns to stop the run and wait for a person.

    ``kind`` is ``"approval"`` (``requests``: the tool calls to approve) or ``"input"`` (``prompt``:
    the question). What the adapter needs to go on, it writes to its own state
    (``session.set``) before returning: that state is committed with the pause, and ``resume``
    reads it back, in whatever process resumes the run."""

    kind: str
    requests: tuple[ApprovalRequest, ...] = ()
    prompt: Any = None

    def as_dict(self) -> dict[str, Any]:
        """The run's ``pause`` object, as the API shows it."""
        if self.kind == "approval":
            return {
                "kind": "approval",
                "requests": [{"id": r.id, "tool": r.tool, "arguments": r.arguments} for r in self.requests],
            }
        return {"kind": "input", "prompt": self.prompt}


@dataclass(frozen=True)
class Decision:
    """A person's answer to one ``ApprovalRequest``."""

    approve: bool
    message: str | None = None


@dataclass(frozen=True)
class Resume:
    """What ``POST /runs/<id>/resume`` brought: a decision per request id, or the input asked for."""

    decisions: Mapping[str, Decision] = field(default_factory=dict)
    input: Any = None


class ConfigError(ValueError):
    """An agent's config is not valid for its framework, or cannot run here.

    ``problems`` maps each bad field, by its path in the config (``tools[1]``, ``options.a``; ``""``
    for the config itself; ``framework`` when the framework cannot run here), to what is wrong with
    it."""

    def __init__(self, field: str, message: str, *, problems: Mapping[str, str] | None = None) -> None:
        self.problems: dict[str, str] = dict(problems) if problems else {field: message}
        super().__init__("; ".join(f"{path}: {text}" for path, text in self.problems.items()))


class ConfigProblems:
    """The bad fields of one config, collected as they are found (the first message per field)."""

    def __init__(self) -> None:
        self.found: dict[str, str] = {}

    def add(self, path: str, message: str) -> None:
        self.found.setdefault(path, message)

    @contextmanager
    def checking(self) -> Iterator[None]:
        """Add the problems of a ``ConfigError`` raised in the block."""
        try:
            yield
        except ConfigError as exc:
            for path, message in exc.problems.items():
                self.add(path, message)

    def __bool__(self) -> bool:
        return bool(self.found)

    def raise_any(self) -> None:
        if self.found:
            raise ConfigError(*next(iter(self.found.items())), problems=self.found)


#: How many levels of objects and lists a config may nest, itself the first: deeper is refused
#: when the agent is saved, before anything walks it recursively.
MAX_CONFIG_DEPTH = 32


def path_of(parent: str, key: str | int) -> str:
    """``tools`` + 1 -> ``tools[1]``; ``options`` + ``a`` -> ``options.a``; ``""`` + ``a`` -> ``a``."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key


def check_json_tree(config: dict[str, Any], problems: ConfigProblems) -> None:
    """Walk the config without recursion: a value nested deeper than ``MAX_CONFIG_DEPTH`` or a
    string holding a null character (PostgreSQL's JSON cannot hold one) is a problem at its path."""
    pending: list[tuple[str, Any, int]] = [("", config, 0)]
    while pending:
        path, value, depth = pending.pop()
        if isinstance(value, str):
            if "\x00" in value:
                problems.add(path, "must not hold a null character")
            continue
        if not isinstance(value, dict | list):
            continue
        if depth >= MAX_CONFIG_DEPTH:
            problems.add(path, f"nested too deep: at most {MAX_CONFIG_DEPTH} levels of objects and lists")
            continue
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str) and "\x00" in key:
                problems.add(path, "must not hold a null character in a key")
                continue
            pending.append((path_of(path, key), item, depth + 1))


def check_unknown_keys(
    config: dict[str, Any], known: Collection[str], framework: str, problems: ConfigProblems
) -> None:
    for key in sorted(set(config) - set(known)):
        problems.add(key, f"unknown option for the {framework} framework")


class Framework(ABC):
    """One adapter per agent library.

    What ``run`` writes to the ``SessionView``'s states, and the items it appends, are committed
    with the run's messages, atomically, only if the run completes: an adapter that raises commits
    nothing. It streams its reply with ``session.emit_delta`` as the reply is produced.
    """

    name: str = ""
    #: How many recent messages ``run`` reads from ``session.messages``: the run's load reads no
    #: more than this (nor than ``AK_SESSION__WINDOW``). None: as many as the setting allows; 0
    #: for an adapter that needs no history (counts and state always come).
    window: int | None = None

    #: Whether an ``openai_agents`` agent's ``handoffs`` may name an agent of this framework.
    takes_handoffs: bool = False

    def validate_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """Return the config, normalised; raise ``ConfigError`` naming every bad key (by its
        path: ``model``, ``tools[1]``). A framework checks its keys in ``check_config``."""
        if not isinstance(config, dict):
            raise ConfigError("config", "must be an object")
        problems = ConfigProblems()
        check_json_tree(config, problems)
        problems.raise_any()  # the framework's checks below may walk what is given
        own = {key: value for key, value in config.items() if key != COMPACTION}
        self.check_config(own, problems)
        if COMPACTION in config:  # every framework's, checked here
            check_compaction(config[COMPACTION], problems, shown=None if problems else self.shown_for(own))
        problems.raise_any()
        return own | ({COMPACTION: config[COMPACTION]} if COMPACTION in config else {})

    def check_config(self, config: dict[str, Any], problems: ConfigProblems) -> None:
        """Add to ``problems`` each bad key of ``config`` (a JSON object of bounded depth,
        without null characters). By default: any key goes."""
        return None

    def secret_references(self, config: dict[str, Any]) -> dict[str, str]:
        """The tenant's secrets a valid config names: ``{path: secret name}``."""
        return {}

    def handoff_references(self, config: dict[str, Any]) -> dict[str, str]:
        """The tenant's agents a valid config hands conversations off to: ``{path: agent name}``."""
        return {}

    def config_schema(self) -> dict[str, Any]:
        """The JSON Schema (OpenAPI 3.0's dialect) of the configs that ``validate_config`` and
        ``check_runnable`` accept, exactly, for the API's document. By default: any object."""
        return {"type": "object", "description": "Checked by the framework when the agent is saved."}

    def window_for(self, config: dict[str, Any]) -> int | None:
        """How many recent entries a run of an agent with ``config`` reads (see ``window``)."""
        return self.window

    def history_for(self, config: dict[str, Any]) -> int | None:
        """How many of the window's latest entries a run of an agent with ``config`` shows its
        model (None: all of its window)."""
        return self.window_for(config)

    def shown_for(self, config: dict[str, Any]) -> int | None:
        """The most entries a run shows the model: ``history_for``, within the run's window (None:
        no bound, for an agent that keeps its own history whole). A ``compaction`` must act before
        that many: its ``after`` is checked against it."""
        window = settings.AK_SESSION["WINDOW"]
        wanted, shown = self.window_for(config), self.history_for(config)
        window = window if wanted is None else min(wanted, window)
        return window if shown is None else min(shown, window)

    def check_runnable(self, config: dict[str, Any]) -> None:
        """Raise ``ConfigError`` if a run of an agent with this (validated) config cannot start
        here: an optional library missing, a model server the platform will not call. Called
        when an agent is saved; a run checks again."""
        return None

    def check_tenant(self, config: dict[str, Any], *, tenant: str | None) -> None:
        """Raise ``ConfigError`` if the (validated) config names a tool or a graph that ``tenant``
        (None: a tenant that may use only what all may) may not use, as if the deployment had none
        of that name. Called when an agent is saved; a run checks again."""
        return None

    def preload(self) -> None:
        """Import what the adapter's runs will need now, at a process's start: importing an SDK in
        a run would stall the event loop, and every run on it, for a second or more."""
        return None

    @abstractmethod
    async def run(self, agent: AgentLike, session: SessionView, message: str) -> str | Reply | Pause:
        """Answer ``message``: the reply's text, or a ``Reply`` with the tokens it used, or a
        ``Pause`` to wait for a person (then ``resume`` goes on, from the state it wrote)."""

    async def resume(self, agent: AgentLike, session: SessionView, pause: Pause, answer: Resume) -> str | Reply | Pause:
        """Go on with a run that ``run`` (or an earlier ``resume``) paused with ``pause``, given a
        person's ``answer``. Only a framework that returns ``Pause`` needs it."""
        raise NotImplementedError(f"the {self.name} framework does not pause")
