"""GET /limits: the tenant's limits and budgets, with what it uses of each now."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents_app.api import limits_serializers as s
from agents_app.budgets.use import budgets_of, budgets_use
from agents_app.limits import limits_use
from agents_app.services import BUILTIN_AGENTS
from agents_app.usage.prices import currency


class LimitsView(APIView):
    @extend_schema(
        responses={200: s.LimitsOutput},
        operation_id="limits",
        description="The tenant's limits (what it may store and hold at once; 0: unlimited) and its budgets"
        " (tokens and spend per UTC day or month, the whole tenant's or one agent's), each with its use now."
        " Budgets are set by the operators in the console.",
    )
    def get(self, request: Request) -> Response:
        tenant = request.user.tenant
        uses = budgets_use(budgets_of(tenant_id=tenant.pk))
        money = currency() if uses else ""
        budgets = [
            {
                "scope": "agent" if use.budget.agent else "tenant",
                "agent": use.budget.agent or None,
                "period": use.budget.period,
                "max_tokens": use.budget.max_tokens,
                "max_spend": None if use.budget.max_spend is None else float(use.budget.max_spend),
                "used_tokens": use.tokens,
                "used_spend": float(use.spend),
                "currency": money,
                "exceeded": use.exceeded,
                "window_start": use.window.start,
                "resets_at": use.window.resets_at,
            }
            for use in uses
        ]
        body = {"limits": limits_use(tenant=tenant, builtins=BUILTIN_AGENTS), "budgets": budgets}
        return Response(s.LimitsOutput(body).data)
