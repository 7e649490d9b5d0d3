"""What a tenant's budgets have used in their current window, read from ``UsageDaily``.

A window is a UTC day or calendar month: a run's tokens count in the window of the day it ended
(``UsageDaily.day``). Tokens are prompt + completion. Spend is priced by the operators' price
table as ``GET /usage`` prices it (``usage.prices``); a model without a price adds nothing to it
(``GET /usage`` shows its cost as null), so cap such a model's tokens to cap it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import Sum
from django.utils import timezone

from agents_app.models import Budget, UsageDaily
from agents_app.usage.prices import prices_for, tokens_cost


@dataclass(frozen=True)
class Window:
    """A budget's current window: its first day and when the next one starts (UTC)."""

    start: date
    resets_at: datetime

    def seconds_left(self, now: datetime) -> int:
        """Whole seconds until the reset, at least 1 (a ``Retry-After``)."""
        return max(1, int((self.resets_at - now).total_seconds() + 0.999))


def window_of(period: str, now: datetime) -> Window:
    """The UTC day or month that ``now`` is in."""
    today = now.astimezone(UTC).date()
    if period == Budget.Period.DAY:
        start, following = today, today + timedelta(days=1)
    else:
        start = today.replace(day=1)
        following = (start + timedelta(days=32)).replace(day=1)
    return Window(start, datetime.combine(following, time(), tzinfo=UTC))


@dataclass(frozen=True)
class BudgetUse:
    """A budget, its current window and what it used there."""

    budget: Budget
    window: Window
    tokens: int
    spend: Decimal

    @property
    def percent(self) -> Decimal:
        """The highest share of its caps used, in % (a cap of 0 is used up at once)."""
        shares = [Decimal(0)]
        for used, cap in ((Decimal(self.tokens), self.budget.max_tokens), (self.spend, self.budget.max_spend)):
            if cap is not None:
                shares.append(Decimal(100) if cap == 0 else used * 100 / Decimal(cap))
        return max(shares)

    @property
    def exceeded(self) -> bool:
        """At or over one of its caps: a run that starts now is refused."""
        return self.percent >= 100


def budgets_use(budgets: Sequence[Budget], *, now: datetime | None = None) -> list[BudgetUse]:
    """The use of ``budgets`` (of one tenant) in their current windows, in order: one aggregate
    query on ``UsageDaily`` for the earliest window, and one on the price table when a budget caps
    spend."""
    if not budgets:
        return []
    now = now or timezone.now()
    windows = [window_of(budget.period, now) for budget in budgets]
    rows = UsageDaily.objects.filter(tenant_id=budgets[0].tenant_id, day__gte=min(w.start for w in windows))
    agents = {budget.agent for budget in budgets}
    if "" not in agents:
        rows = rows.filter(agent__in=agents)
    sums = list(
        rows.order_by()
        .values_list("day", "agent", "model")
        .annotate(Sum("prompt_tokens"), Sum("completion_tokens"), Sum("cached_tokens"))
    )
    prices = prices_for({row[2] for row in sums}) if any(b.max_spend is not None for b in budgets) else {}
    return [_use(budget, window, sums, prices) for budget, window in zip(budgets, windows, strict=True)]


def _use(budget: Budget, window: Window, sums: Iterable[tuple], prices: dict) -> BudgetUse:
    by_model: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for day, agent, model, prompt, completion, cached in sums:
        if day >= window.start and (not budget.agent or agent == budget.agent):
            counts = by_model[model]
            counts[0] += prompt or 0
            counts[1] += completion or 0
            counts[2] += cached or 0
    tokens = sum(prompt + completion for prompt, completion, _ in by_model.values())
    spend = Decimal(0)
    for model, (prompt, completion, cached) in by_model.items():
        cost = tokens_cost(prices.get(model), prompt=prompt, completion=completion, cached=cached)
        spend += cost or 0  # None: a model without a price
    return BudgetUse(budget, window, tokens, spend)


def budgets_of(*, tenant_id: int, agent: str | None = None) -> list[Budget]:
    """The tenant's budgets (one indexed query); with ``agent``, those that count its runs: the
    tenant's own and that agent's."""
    budgets = Budget.objects.filter(tenant_id=tenant_id)
    if agent is not None:
        budgets = budgets.filter(agent__in=["", agent])
    return list(budgets.order_by("agent", "period"))
