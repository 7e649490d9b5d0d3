"""The framework registry: ``settings.AK_FRAMEWORKS`` maps a name to an adapter's dotted path."""

from __future__ import annotations

from functools import cache
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from agents_app.frameworks.base import AgentLike, AgentSpec, ConfigError, Framework, Reply, Usage


class UnknownFramework(LookupError):
    pass


def framework_names() -> list[str]:
    return sorted(settings.AK_FRAMEWORKS)


@cache
def _load(path: str) -> Framework:
    return import_string(path)()


def agent_config_check(framework: str, config: Any, *, tenant: str | None = None) -> dict[str, Any]:
    """The config of an agent of ``framework`` about to be saved for ``tenant`` (its slug),
    normalised: valid for its framework, naming only tools and graphs the tenant may use, and
    runnable here (its library installed, its model server one the platform calls). Raises
    ``UnknownFramework`` or ``ConfigError``."""
    adapter = get_framework(framework)
    config = adapter.validate_config(config)
    adapter.check_tenant(config, tenant=tenant)
    adapter.check_runnable(config)
    return config


def preload_frameworks() -> None:
    """``Framework.preload`` for every configured framework: called as a web or worker process
    starts. A framework whose library is missing is skipped (its agents are refused when saved)."""
    for name in framework_names():
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
    "ConfigError",
    "Framework",
    "Reply",
    "UnknownFramework",
    "Usage",
    "agent_config_check",
    "framework_names",
    "get_framework",
    "preload_frameworks",
]
