"""The console's usage dashboard: runs, tokens, spend, failure rate and timing percentiles of the
tenant in scope (every tenant for a superuser), over the last 7, 30 or 90 days, read from the
``UsageDaily`` rows (``agents_app.usage``), never from the runs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.http import HttpRequest
from django.template.response import TemplateResponse

from agents_app.models import UsageDaily
from agents_app.usage import histogram
from agents_app.usage.prices import currency
from agents_app.usage.report import Figures, usage_grouped, usage_rows, usage_timings
from sessions_app.admin_scoping import Scope, request_scope

WINDOWS = (7, 30, 90)
PERCENTILES = (("p50", 0.5), ("p95", 0.95))


def cost_text(cost: Decimal | None, unit: str) -> str:
    """A cost as the console shows it: six decimals and the currency; "no price" for None."""
    return "no price" if cost is None else f"{cost:,.6f} {unit}"


def usage_dashboard(*, scope: Scope, days: int, today: date | None = None) -> dict[str, Any]:
    """The dashboard's figures and chart series for ``scope`` over the ``days`` days to ``today``."""
    until = today or datetime.now(UTC).date()
    since = until - timedelta(days=days - 1)
    rows = usage_rows(UsageDaily.objects.filter(scope.q("tenant")), since=since, until=until)
    per_day, total = usage_grouped(rows, group_by="day")
    by_agent, _ = usage_grouped(rows, group_by="agent")
    by_model, _ = usage_grouped(rows, group_by="model")
    unit = currency()
    return {
        "since": since,
        "until": until,
        "days": days,
        "windows": WINDOWS,
        "currency": unit,
        "total": _figures(total, unit),
        "tables": [
            ("By agent", [_figures(group, unit) for group in by_agent], "usage-by-agent"),
            ("By model", [_figures(group, unit) for group in by_model], "usage-by-model"),
        ],
        "chart_data": _series(since, until, per_day, by_agent, usage_timings(rows)),
    }


def usage_summary(*, scope: Scope, days: int = 30) -> dict[str, Any]:
    """The home page's line: the last ``days`` days' runs, tokens and spend (three queries)."""
    until = datetime.now(UTC).date()
    rows = usage_rows(UsageDaily.objects.filter(scope.q("tenant")), since=until - timedelta(days=days - 1), until=until)
    _, total = usage_grouped(rows, group_by="model")
    return {"days": days, **_figures(total, currency())}


def usage_view(request: HttpRequest, *, site_context: dict[str, Any]) -> TemplateResponse:
    """``/admin/usage/?days=N``: the dashboard (an admin view: staff only, scoped like the rest)."""
    days = int(request.GET["days"]) if request.GET.get("days") in {str(n) for n in WINDOWS} else 30
    context = {
        **site_context,
        "title": "Usage and spend",
        **usage_dashboard(scope=request_scope(request), days=days),
    }
    return TemplateResponse(request, "admin/console/usage.html", context)


def _figures(group: Figures, unit: str) -> dict[str, Any]:
    runs, failed = group.counts["runs"], group.counts["failed"]
    return {
        "key": group.key,
        **group.counts,
        "tokens": group.counts["prompt_tokens"] + group.counts["completion_tokens"],
        "cost": group.cost,
        "cost_text": cost_text(group.cost, unit),
        "failure_rate": f"{100 * failed / runs:.1f} %" if runs else "—",
    }


def _series(
    since: date,
    until: date,
    per_day: list[Figures],
    by_agent: list[Figures],
    timings: dict[date, dict[str, list[int]]],
) -> dict[str, Any]:
    """What the charts draw (``console/usage.js``): one point a day, days without runs at 0."""
    found = {group.key: group for group in per_day}
    days = [since + timedelta(days=n) for n in range((until - since).days + 1)]
    series: dict[str, Any] = {"days": [day.isoformat() for day in days]}
    for name in ("succeeded", "failed", "cancelled", "prompt_tokens", "completion_tokens", "cached_tokens"):
        series[name] = [found[day].counts[name] if day in found else 0 for day in days]
    series["failure_rate"] = [
        round(100 * found[day].counts["failed"] / found[day].counts["runs"], 2) if day in found else None
        for day in days
    ]
    for kind in ("duration", "wait"):
        for label, fraction in PERCENTILES:
            series[f"{kind}_{label}"] = [
                histogram.percentile(timings[day][kind], fraction) if day in timings else None for day in days
            ]
    series["spend_agents"] = [group.key for group in by_agent]
    series["spend"] = [None if group.cost is None else float(group.cost) for group in by_agent]
    return series
