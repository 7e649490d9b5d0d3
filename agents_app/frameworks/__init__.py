"""The framework registry: ``settings.AK_FRAMEWORKS`` maps a name to an adapter's dotted path."""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from agents_app.frameworks.base import AgentLike, AgentSpec, ConfigError, Framework


class UnknownFramework(LookupError):
    pass


def framework_names() -> list[str]:
    return sorted(settings.AK_FRAMEWORKS)


@cache
def _load(path: str) -> Framework:
    return import_string(path)()


def get_framework(name: str) -> Framework:
    try:
        path = settings.AK_FRAMEWORKS[name]
    except KeyError:
        raise UnknownFramework(f"unknown framework {name!r}; known: {', '.join(framework_names())}") from None
    return _load(path)


__all__ = ["AgentLike", "AgentSpec", "ConfigError", "Framework", "UnknownFramework", "framework_names", "get_framework"]
