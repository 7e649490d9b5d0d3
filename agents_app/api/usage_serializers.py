"""``GET /usage``'s query and answer (``agents_app.api.views.usage``)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from rest_framework import serializers

from agents_app.api.serializers import QueryParameter
from agents_app.usage.report import DEFAULT_DAYS


class QueryDateField(QueryParameter, serializers.DateField):
    """A day in a query string, ``YYYY-MM-DD`` only (``date.fromisoformat`` takes other shapes)."""

    def to_internal_value(self, data: Any) -> date:
        if not isinstance(data, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", data):
            self.fail("invalid", format="YYYY-MM-DD")
        return super().to_internal_value(data)


class QueryChoiceField(QueryParameter, serializers.ChoiceField):
    pass


class UsageInput(serializers.Serializer):
    since = QueryDateField(required=False, help_text="The first day counted (UTC). Default: 29 days before `until`.")
    until = QueryDateField(required=False, help_text="The last day counted (UTC), included. Default: today.")
    group_by = QueryChoiceField(
        choices=["day", "agent", "session", "model"],
        required=False,
        default="day",
        help_text="What each item adds up. Default: `day`.",
    )

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        until = data.get("until") or datetime.now(UTC).date()
        since = data.get("since") or until - timedelta(days=DEFAULT_DAYS - 1)
        if since > until:
            raise serializers.ValidationError({"since": ["Give a day at or before `until`."]})
        return {**data, "since": since, "until": until}


class UsageTotal(serializers.Serializer):
    runs = serializers.IntegerField(help_text="Runs that ended (succeeded, failed or cancelled).")
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    cost = serializers.FloatField(
        allow_null=True, help_text="In the price table's currency; null where a model that used tokens has no price."
    )


class UsageItem(UsageTotal):
    key = serializers.CharField(
        allow_blank=True,
        help_text="The day (`YYYY-MM-DD`), the agent's name, the session id or the model (empty: runs whose"
        " agent names no model).",
    )


class UsageReportOutput(serializers.Serializer):
    items = UsageItem(many=True)
    total = UsageTotal()
