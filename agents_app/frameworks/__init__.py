"""The framework registry: ``settings.AK_FRAMEWORKS`` maps a name to an adapter's dotted path."""

from __future__ import annotations

import contextlib
from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from agents_app.frameworks.base import (
    AgentLike,
    AgentSpec,
    ApprovalRequest,
    ConfigError,
    Decision,
    Framework,
    Pause,
    Reply,
    Resume,
    Usage,
)
from infra.io_threads import blocking


class UnknownFramework(LookupError):
    pass


def framework_names() -> list[str]:
    return sorted(settings.AK_FRAMEWORKS)


@cache
def _load(path: str) -> Framework:
    return import_string(path)()


#: The frameworks whose libraries this process has imported (or found missing).
_loaded: set[str] = set()


def preload_frameworks() -> None:
    """``Framework.preload`` for the frameworks ``AK_AGENTS__PRELOAD`` names (every one unless set):
    called as a web or worker process starts."""
    for name in settings.AK_AGENTS["PRELOAD"]:
        _preload(get_framework(name))


async def framework_loaded(framework: Framework) -> None:
    """Import the framework's library before its first run in this process, in an I/O thread: on
    the event loop, an import of a second or more would hold up every run and heartbeat there."""
    if framework.name not in _loaded:
        await blocking(_preload, framework)


def _preload(framework: Framework) -> None:
    with contextlib.suppress(ImportError):  # missing: its agents are refused when saved, its runs fail
        framework.preload()
    _loaded.add(framework.name)


def get_framework(name: str) -> Framework:
    try:
        path = settings.AK_FRAMEWORKS[name]
    except KeyError:
        raise UnknownFramework(f"unknown framework {name!r}; known: {', '.join(framework_names())}") from None
    return _load(path)


__all__ = [
    "AgentLike",
    "AgentSpec",
    "ApprovalRequest",
    "ConfigError",
    "Decision",
    "Framework",
    "Pause",
    "Reply",
    "Resume",
    "UnknownFramework",
    "Usage",
    "framework_loaded",
    "framework_names",
    "get_framework",
    "preload_frameworks",
]
