"""``GET /limits``'s answer (``agents_app.api.views.limits``)."""

from __future__ import annotations

from rest_framework import serializers


class LimitUse(serializers.Serializer):
    limit = serializers.IntegerField(help_text="The tenant's limit (its own, else the deployment's); 0: unlimited.")
    used = serializers.IntegerField(
        allow_null=True,
        help_text="What the tenant holds now, counted as the limit's check counts it (built-in agents are not"
        " counted); null for `event_streams` without a limit (streams are then not counted).",
    )


class LimitsOfTenant(serializers.Serializer):
    agents = LimitUse()
    secrets = LimitUse()
    sessions = LimitUse()
    schedules = LimitUse()
    concurrent_runs = LimitUse()
    event_streams = LimitUse()


class BudgetUseOutput(serializers.Serializer):
    scope = serializers.ChoiceField(choices=["tenant", "agent"], help_text="The whole tenant's runs, or one agent's.")
    agent = serializers.CharField(allow_null=True, help_text="The agent whose runs it counts; null: every agent.")
    period = serializers.ChoiceField(choices=["day", "month"], help_text="Its window: a UTC day or calendar month.")
    max_tokens = serializers.IntegerField(allow_null=True, help_text="Prompt + completion tokens; null: no cap.")
    max_spend = serializers.FloatField(allow_null=True, help_text="In `currency`; null: no cap.")
    used_tokens = serializers.IntegerField(help_text="Prompt + completion tokens of the runs ended in the window.")
    used_spend = serializers.FloatField(
        help_text="Their cost from the operators' price table (a model without a price adds nothing)."
    )
    currency = serializers.CharField(help_text="The price table's currency (ISO 4217).")
    exceeded = serializers.BooleanField(help_text="At or over a cap: new runs it counts are refused (429).")
    window_start = serializers.DateField(help_text="The window's first day (UTC).")
    resets_at = serializers.DateTimeField(help_text="When the next window starts (UTC).")


class LimitsOutput(serializers.Serializer):
    limits = LimitsOfTenant()
    budgets = BudgetUseOutput(many=True)
