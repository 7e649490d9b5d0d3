"""The framework registry: ``settings.AK_FRAMEWORKS`` maps a name to an adapter's dotted path."""

from __future__ import annotations

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


class UnknownFramework(LookupError):
    pass


def framework_names() -> list[str]:
    return sorted(settings.AK_FRAMEWORKS)


@cache
def _load(path: str) -> Framework:
    return import_string(path)()


def preload_frameworks() -> None:
    """``Framework.preload`` for the frameworks ``AK_AGENTS__PRELOAD`` names (every one unless set):
    called as a web or worker process starts. A framework whose library is missing is skipped (its
    agents are refused when saved)."""
    for name in settings.AK_AGENTS["PRELOAD"]:
        try:
            get_framework(name).preload()
        except ImportError:
            continue


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
    "framework_names",
    "get_framework",
    "preload_frameworks",
]
