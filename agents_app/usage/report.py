"""Usage read from ``UsageDaily`` rows (never from the runs): grouped for ``GET /usage``, and the
series the console's dashboard draws. Callers scope the rows to a tenant (or, for a superuser in
the console, to every tenant)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet, Sum

from agents_app.models import UsageDaily
from agents_app.usage import histogram
from agents_app.usage.prices import cost_sum, prices_for, tokens_cost

#: ``group_by`` → the row's field that is the item's key.
GROUPS = {"day": "day", "agent": "agent", "session": "session_id", "model": "model"}
COUNTS = ("runs", "succeeded", "failed", "cancelled", "prompt_tokens", "completion_tokens", "cached_tokens")
DEFAULT_DAYS = 30


@dataclass
class Figures:
    """The sums of one group (or of all: the total), and its cost (None: a model has no price)."""

    key: Any = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    costs: list[Decimal | None] = field(default_factory=list)

    @property
    def cost(self) -> Decimal | None:
        return cost_sum(self.costs)

    def add(self, sums: dict[str, Any], cost: Decimal | None) -> None:
        for name in COUNTS:
            self.counts[name] += int(sums[name] or 0)
        self.costs.append(cost)

    def as_dict(self, *, with_key: bool = True) -> dict[str, Any]:
        out = {"key": self.key} if with_key else {}
        out.update({name: self.counts[name] for name in ("runs", "succeeded", "failed")})
        out.update(prompt_tokens=self.counts["prompt_tokens"], completion_tokens=self.counts["completion_tokens"])
        out["cost"] = self.cost
        return out


def usage_rows(rows: QuerySet[UsageDaily], *, since: date, until: date) -> QuerySet[UsageDaily]:
    return rows.filter(day__gte=since, day__lte=until)


def usage_grouped(rows: QuerySet[UsageDaily], *, group_by: str) -> tuple[list[Figures], Figures]:
    """The groups of ``rows`` by ``group_by`` (sorted by key: days in order) and their total.
    Costs are priced per model within each group, then summed."""
    key_field = GROUPS[group_by]
    fields = [key_field] if key_field == "model" else [key_field, "model"]
    sums = list(rows.order_by().values(*fields).annotate(**{name: Sum(name) for name in COUNTS}))
    prices = prices_for(row["model"] for row in sums)
    groups: dict[Any, Figures] = {}
    total = Figures()
    for row in sums:
        cost = tokens_cost(
            prices.get(row["model"]),
            prompt=int(row["prompt_tokens"] or 0),
            completion=int(row["completion_tokens"] or 0),
            cached=int(row["cached_tokens"] or 0),
        )
        key = row[key_field]
        groups.setdefault(key, Figures(key=key)).add(row, cost)
        total.add(row, cost)
    return [groups[key] for key in sorted(groups)], total


def usage_timings(rows: QuerySet[UsageDaily]) -> dict[date, dict[str, list[int]]]:
    """Per day, the run durations' and queue waits' histograms (``histogram``), merged."""
    by_day: dict[date, dict[str, list[int]]] = {}
    for day, timings in rows.order_by("day").values_list("day", "timings").iterator():
        merged = by_day.setdefault(day, {"duration": [0] * histogram.SIZE, "wait": [0] * histogram.SIZE})
        for kind in ("duration", "wait"):
            merged[kind] = histogram.merged([merged[kind], (timings or {}).get(kind)])
    return by_day
