"""A run that starts over one of its tenant's budgets is refused: ``BudgetExceeded``, answered
``429 {"code": "budget_exceeded"}`` with ``Retry-After`` until the window resets
(``agents_app.api.errors``). A run under way finishes and is counted, however far over it goes.

Where it is checked: a new run (sync, streamed or queued: ``runs.submit.run_record``), a
schedule's firing (skipped, ``last_error`` says why), and a queued run when a worker claims it
(``budget_refuses_claim``): accepted under budget, it ends ``failed`` with the error
``budget_exceeded: ...`` if its tenant went over meanwhile, rather than spend past the cap. A
resumed run (paused for a person) is a run under way: it is not checked. A new run on a tenant
without budgets costs no query of its own: its agent's lookup says whether a budget counts it
(``agents_with_budgets``); a claim or a firing costs one indexed query that finds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from agents_app.budgets.use import BudgetUse, budgets_of, budgets_use
from agents_app.models import Agent, Budget

ERROR_CODE = "budget_exceeded"


class BudgetExceeded(Exception):
    """A budget of the tenant is used up: ``over`` the budgets at or over a cap; ``retry_after``
    the seconds until the last of their windows resets, ``resets_at`` when."""

    status = 429

    def __init__(self, over: Sequence[BudgetUse], *, now: datetime) -> None:
        last = max(over, key=lambda use: use.window.resets_at)
        self.over = list(over)
        self.resets_at = last.window.resets_at
        self.retry_after = last.window.seconds_left(now)
        described = ", ".join(_describe(use) for use in over)
        super().__init__(f"The tenant's {described} is used up until {self.resets_at.isoformat()}.")


def _describe(use: BudgetUse) -> str:
    budget = use.budget
    period = "daily" if budget.period == budget.Period.DAY else "monthly"
    scope = f" for agent {budget.agent!r}" if budget.agent else ""
    return f"{period} budget{scope}"


def agents_with_budgets() -> QuerySet[Agent]:
    """The live agents, each annotated ``budgeted``: whether a budget of its tenant counts its
    runs (an ``EXISTS`` in the agent's own query)."""
    counting = Budget.objects.filter(Q(agent="") | Q(agent=OuterRef("name")), tenant_id=OuterRef("tenant_id"))
    return Agent.objects.annotate(budgeted=Exists(counting))


def budget_check(*, tenant_id: int, agent: str, now: datetime | None = None) -> None:
    """Raise ``BudgetExceeded`` if a budget that counts ``agent``'s runs in the tenant is at or
    over a cap in its current window."""
    budgets = budgets_of(tenant_id=tenant_id, agent=agent)
    if not budgets:
        return
    now = now or timezone.now()
    over = [use for use in budgets_use(budgets, now=now) if use.exceeded]
    if over:
        raise BudgetExceeded(over, now=now)


def budget_refuses_claim(*, tenant_id: int, agent: str, first_attempt: bool) -> str | None:
    """Why a queued run a worker just claimed may not start (``budget_exceeded: ...``), or None.
    Only a run's first attempt is checked: one retried after a lost worker was under way."""
    if not first_attempt:
        return None
    try:
        budget_check(tenant_id=tenant_id, agent=agent)
    except BudgetExceeded as exc:
        return f"{ERROR_CODE}: {exc}"
    return None
