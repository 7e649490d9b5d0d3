"""Spend from the operators' price table (``ModelPrice``, per million tokens, in
``PricingSettings``' currency), computed when usage is read: a price edited applies to all the
usage shown afterwards, past days included, and no stored figure goes stale."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from agents_app.models import ModelPrice, PricingSettings

MILLION = Decimal(1_000_000)
TOKENS = ("prompt_tokens", "completion_tokens", "cached_tokens")


def prices_for(models: Iterable[str]) -> dict[str, ModelPrice]:
    """The prices of ``models`` that have one, by model name."""
    return {price.model: price for price in ModelPrice.objects.filter(model__in=set(models))}


def currency() -> str:
    return PricingSettings.current().currency


def tokens_cost(price: ModelPrice | None, *, prompt: int, completion: int, cached: int = 0) -> Decimal | None:
    """What these tokens cost at ``price`` (exact: no rounding), 0 for no tokens, None when they
    were used by a model without a price. ``cached`` is a part of ``prompt``."""
    if not (prompt or completion):
        return Decimal(0)
    if price is None:
        return None
    cached = min(cached, prompt)
    cached_price = price.prompt_per_million if price.cached_per_million is None else price.cached_per_million
    total = (
        (prompt - cached) * price.prompt_per_million + cached * cached_price + completion * price.completion_per_million
    )
    return total / MILLION


def usage_tokens(usage: Any) -> dict[str, int] | None:
    """A run's ``usage`` as counts (``prompt_tokens``, ``completion_tokens``, ``cached_tokens``,
    each a non-negative int, 0 where not reported), or None when it reported none."""
    if not isinstance(usage, dict) or not usage:
        return None
    return {name: max(value, 0) if isinstance(value, int) else 0 for name in TOKENS for value in [usage.get(name)]}


def cost_sum(costs: Iterable[Decimal | None]) -> Decimal | None:
    """The sum of ``costs``; None when one is None (a partial sum is not shown as the spend)."""
    total = Decimal(0)
    for cost in costs:
        if cost is None:
            return None
        total += cost
    return total
