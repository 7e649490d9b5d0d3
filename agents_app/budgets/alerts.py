"""Alerts: when a run's end makes a budget's use cross 80 % and then 100 % of a cap in its
window, a warning is logged (logger ``agents_app.budgets.alerts``, with the event under
``extra["event"]``) and, if the budget has an ``alert_webhook_url``, the event is POSTed there
(``budget_alert_deliver``, signed as run webhooks are). Each budget alerts once per window,
threshold and caps (``Budget.caps``: an operator who changes a cap re-arms them): a ``BudgetAlert``
row, unique on the four, records it, so of two run ends that cross at once one alerts. A run's end
that used no tokens checks nothing; one that did, on a tenant without budgets, costs one indexed
query that finds nothing.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from datetime import time as day_start
from typing import Any

from celery import current_app
from django.db import IntegrityError, transaction

from agents_app.budgets.use import BudgetUse, budgets_of, budgets_use, window_of
from agents_app.models import Budget, BudgetAlert
from agents_app.usage.prices import currency
from agents_app.webhooks import Delivery, webhook_post

logger = logging.getLogger(__name__)

THRESHOLDS = (80, 100)
EVENT = "budget.threshold"
DELIVER_TASK = "agents_app.tasks.deliver_budget_alert"


def budget_alerts_check(*, tenant_id: int, agent: str) -> list[BudgetAlert]:
    """After a run of ``agent`` that used tokens ended (its usage committed): the alerts its end
    made, each recorded, logged and (with a URL) queued for delivery once committed."""
    budgets = budgets_of(tenant_id=tenant_id, agent=agent)
    if not budgets:
        return []
    due = [(use, threshold) for use in budgets_use(budgets) for threshold in THRESHOLDS if use.percent >= threshold]
    if not due:
        return []
    sent = set(
        BudgetAlert.objects.filter(
            budget__in=[use.budget for use, _ in due], window_start__in={use.window.start for use, _ in due}
        ).values_list("budget_id", "window_start", "threshold", "caps")
    )
    made = []
    for use, threshold in due:
        if (use.budget.pk, use.window.start, threshold, use.budget.caps) not in sent:
            alert = _record(use, threshold)
            if alert is not None:
                _emit(alert)
                made.append(alert)
    return made


def _record(use: BudgetUse, threshold: int) -> BudgetAlert | None:
    """The alert's row, or None when another process's run end recorded it first."""
    pending = BudgetAlert.Delivery.PENDING if use.budget.alert_webhook_url else BudgetAlert.Delivery.NONE
    try:
        with transaction.atomic():
            return BudgetAlert.objects.create(
                budget=use.budget,
                window_start=use.window.start,
                threshold=threshold,
                caps=use.budget.caps,
                used_tokens=use.tokens,
                used_spend=use.spend,
                webhook_status=pending,
            )
    except IntegrityError:
        return None


def _emit(alert: BudgetAlert) -> None:
    event = budget_alert_event(alert)
    logger.warning(
        "tenant %s: budget %s crossed %s %% (%s tokens, %s %s spent)",
        event["tenant"],
        alert.budget_id,
        alert.threshold,
        alert.used_tokens,
        event["used_spend"],
        event["currency"],
        extra={"tenant": event["tenant"], "event": event},
    )
    if alert.budget.alert_webhook_url:
        transaction.on_commit(lambda: budget_alert_publish(alert_id=alert.pk))


def budget_alert_event(alert: BudgetAlert) -> dict[str, Any]:
    """The alert as logged and POSTed (the README's "Budget alerts" shows it)."""
    budget: Budget = alert.budget
    window = window_of(budget.period, datetime.combine(alert.window_start, day_start(), tzinfo=UTC))
    return {
        "event": EVENT,
        "alert_id": alert.pk,
        "tenant": budget.tenant.slug,
        "budget": {
            "id": budget.pk,
            "scope": "agent" if budget.agent else "tenant",
            "agent": budget.agent or None,
            "period": budget.period,
            "max_tokens": budget.max_tokens,
            "max_spend": None if budget.max_spend is None else float(budget.max_spend),
        },
        "threshold": alert.threshold,
        "used_tokens": alert.used_tokens,
        "used_spend": float(alert.used_spend),
        "currency": currency(),
        "window_start": alert.window_start.isoformat(),
        "resets_at": window.resets_at.isoformat(),
        "created_at": alert.created_at.isoformat(),
    }


def budget_alert_publish(*, alert_id: int, countdown: float | None = None) -> None:
    """Hand the delivery task to the broker (by name: the tasks module calls this one)."""
    try:
        current_app.send_task(DELIVER_TASK, (alert_id,), countdown=countdown)
    except Exception:  # broker down: the alert is recorded and logged; its POST stays pending
        logger.warning("budget alert %s: its webhook stays pending: broker unavailable", alert_id)


def budget_alert_deliver(*, alert_id: int) -> Delivery:
    """Try one POST of the alert to its budget's webhook, as run webhooks are tried
    (``webhook_post``); say whether and when to try again."""
    alert = BudgetAlert.objects.select_related("budget__tenant").filter(pk=alert_id).first()
    if alert is None or alert.webhook_status != BudgetAlert.Delivery.PENDING or not alert.budget.alert_webhook_url:
        return Delivery("nothing to do")
    return webhook_post(
        BudgetAlert.objects.filter(pk=alert.pk),
        url=alert.budget.alert_webhook_url,
        secret=alert.budget.tenant.webhook_secret,
        body=json.dumps(budget_alert_event(alert), separators=(",", ":")).encode(),
        headers={"X-AK-Event": EVENT},
        attempts=alert.webhook_attempts,
    )
