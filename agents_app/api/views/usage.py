"""GET /usage: the tenant's runs, tokens and spend over a span of days, grouped."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents_app.api import usage_serializers as s
from agents_app.api.serializers import validated
from agents_app.models import UsageDaily
from agents_app.usage.report import usage_grouped, usage_rows


class UsageView(APIView):
    @extend_schema(
        parameters=[s.UsageInput],
        responses={200: s.UsageReportOutput},
        operation_id="usage",
        description="Runs that ended between `since` and `until` (UTC days, both included), their tokens and"
        " their cost, grouped by `group_by`; items sorted by key. Costs come from the operators' price table"
        " at the time of the request.",
    )
    def get(self, request: Request) -> Response:
        query = validated(s.UsageInput, request.query_params)
        own = UsageDaily.objects.filter(tenant=request.user.tenant)
        rows = usage_rows(own, since=query["since"], until=query["until"])
        items, total = usage_grouped(rows, group_by=query["group_by"])
        body = {"items": [item.as_dict() for item in items], "total": total.as_dict(with_key=False)}
        for figures in [*body["items"], body["total"]]:
            figures["cost"] = None if figures["cost"] is None else float(figures["cost"])
            if "key" in figures:
                figures["key"] = str(figures["key"])
        return Response(s.UsageReportOutput(body).data)
