"""Typed readers of the environment that fail loudly.

Every setting that comes from the environment is read here, through these helpers, so that a
wrong value stops start-up with a message naming the variable instead of being ignored.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Iterable
from typing import TypeVar

from django.core.exceptions import ImproperlyConfigured

T = TypeVar("T", int, float)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
#: A tenant's slug (``sessions_app.models.Tenant.slug``).
_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None else value.strip()


def env_str(name: str, default: str) -> str:
    value = _raw(name)
    return default if value is None or value == "" else value


def env_optional(name: str) -> str | None:
    value = _raw(name)
    return value or None


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false/1/0), got {value!r}")


def _env_number(name: str, default: T, parse: Callable[[str], T], kind: str, minimum: T | None, maximum: T | None) -> T:
    value = _raw(name)
    if not value:
        return default
    try:
        number = parse(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be {kind}, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, got {number}")
    return number


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    return _env_number(name, default, int, "an integer", minimum, maximum)


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    return _env_number(name, default, float, "a number", minimum, None)


def env_choice(name: str, default: str, choices: Iterable[str]) -> str:
    allowed = sorted(choices)
    value = env_str(name, default)
    if value not in allowed:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def env_list(name: str, default: list[str], *, choices: Collection[str] | None = None) -> list[str]:
    """Comma-separated items; with ``choices``, each one of them."""
    value = _raw(name)
    if value is None:
        return default
    items = [item.strip() for item in value.split(",") if item.strip()]
    if choices is not None and (unknown := sorted(set(items) - set(choices))):
        raise ImproperlyConfigured(f"{name}: unknown {', '.join(unknown)}; one of {', '.join(sorted(choices))}")
    return items


def env_mapping(name: str) -> dict[str, str]:
    """``name=value,name=value`` (e.g. frameworks by dotted path); empty when unset."""
    mapping: dict[str, str] = {}
    for item in env_list(name, []):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ImproperlyConfigured(f"{name}: expected name=value pairs separated by commas, got {item!r}")
        mapping[key.strip()] = value.strip()
    return mapping


def env_tenants_of(name: str, *, declared: Collection[str], declared_in: str) -> dict[str, frozenset[str]]:
    """``thing=slug|slug,...``: the tenants (by slug) that alone may use each named thing, e.g. a
    tool of ``declared_in``; empty when unset (every tenant may use every thing). Every name must
    be one of ``declared``, named once, with one or more slugs of a tenant slug's form."""
    restricted: dict[str, frozenset[str]] = {}
    for item in env_list(name, []):
        thing, sep, slugs = (part.strip() for part in item.partition("="))
        tenants = [slug.strip() for slug in slugs.split("|")]
        if not sep or not thing or not all(tenants):
            raise ImproperlyConfigured(f"{name}: expected name=tenant|tenant pairs separated by commas, got {item!r}")
        if thing not in declared:
            raise ImproperlyConfigured(f"{name}: {thing!r} is not declared in {declared_in}")
        if thing in restricted:
            raise ImproperlyConfigured(f"{name}: {thing!r} is named twice")
        for slug in tenants:
            if not _SLUG.fullmatch(slug):
                raise ImproperlyConfigured(f"{name}: {slug!r} is not a tenant's slug (lowercase letters, digits, -)")
        restricted[thing] = frozenset(tenants)
    return restricted
