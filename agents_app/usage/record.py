"""A run's end and its usage, written together: the run's row is ended and the tenant's
``UsageDaily`` row for the day, agent, session and model is added to, in one transaction, so
usage never counts a run that did not end, nor misses one that did. Once it is committed, a run
that used tokens has its tenant's budgets checked for alerts (``budgets.alerts``).

The model is the one its agent's config named (``config["model"]``) when the run's adapter was
built from it: recorded on the run (``Run.model``) as the run is made, and again as an attempt
starts if the agent was changed meanwhile (``model_record``). An agent changed while a run is in
flight does not move that run's tokens to its new model. An agent without one (``echo``) is
counted under ``""``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import QuerySet

from agents_app.budgets.alerts import budget_alerts_check
from agents_app.models import Run, UsageDaily
from agents_app.usage import histogram
from agents_app.usage.prices import TOKENS, usage_tokens


@dataclass(frozen=True)
class RunFacts:
    """What a run's usage row is keyed and timed by, read before its end is written."""

    tenant_id: int
    agent: str
    model: str
    session_id: str
    created_at: datetime
    started_at: datetime | None


def ended_with_usage(rows: QuerySet[Run], *, run_id: Any, changes: dict[str, Any]) -> bool:
    """``rows.update(**changes)`` (the conditional UPDATE that ends run ``run_id``) and, if it
    changed the row, the run's usage added, in one transaction. ``changes`` has ``status``,
    ``finished_at`` and, where known, ``usage`` and ``started_at`` (None: it never started).
    Returns whether the run ended here."""
    with transaction.atomic():
        facts = _facts(run_id)
        if not rows.update(**changes):
            return False
        if facts is not None:
            usage_add(facts, changes=changes)
            if any((usage_tokens(changes.get("usage")) or {}).values()):  # no tokens: no budget moved
                alert = partial(budget_alerts_check, tenant_id=facts.tenant_id, agent=facts.agent)
                transaction.on_commit(alert, robust=True)
    return True


@transaction.atomic(savepoint=False)  # its own transaction, or its caller's (the run's end)
def usage_add(facts: RunFacts, *, changes: dict[str, Any]) -> None:
    """One ended run added to its ``UsageDaily`` row (made on its first run), under the row's lock."""
    finished: datetime = changes["finished_at"]
    started = changes.get("started_at", facts.started_at)
    status = changes["status"]
    tokens = usage_tokens(changes.get("usage")) or dict.fromkeys(TOKENS, 0)
    row, _ = UsageDaily.objects.select_for_update().get_or_create(
        tenant_id=facts.tenant_id,
        day=finished.astimezone(UTC).date(),
        agent=facts.agent,
        session_id=facts.session_id,
        model=facts.model,
    )
    row.runs += 1
    row.succeeded += status == Run.Status.SUCCEEDED
    row.failed += status == Run.Status.FAILED
    row.cancelled += status == Run.Status.CANCELLED
    row.prompt_tokens += tokens["prompt_tokens"]
    row.completion_tokens += tokens["completion_tokens"]
    row.cached_tokens += tokens["cached_tokens"]
    if started is not None:  # None: it never started (no duration, no wait)
        timings = dict(row.timings or {})
        timings["duration"] = histogram.added(timings.get("duration"), (finished - started).total_seconds())
        timings["wait"] = histogram.added(timings.get("wait"), (started - facts.created_at).total_seconds())
        row.timings = timings
    row.save()


def model_of(config: Any) -> str:
    """The model an agent's config names, or ""."""
    model = config.get("model") if isinstance(config, dict) else None
    return model[:200] if isinstance(model, str) else ""


def model_record(run: Run) -> None:
    """As an attempt of ``run`` starts with ``run.agent`` as loaded for it: its ``model`` is the one
    that config names (one UPDATE, only when the agent was changed since the run was made)."""
    model = model_of(run.agent.config)
    if run.model != model:
        Run.objects.filter(pk=run.pk).update(model=model)
        run.model = model


def _facts(run_id: Any) -> RunFacts | None:
    found = (
        Run.objects.filter(pk=run_id)
        .values_list("tenant_id", "agent__name", "model", "session__session_id", "created_at", "started_at")
        .first()
    )
    return None if found is None else RunFacts(*found)
