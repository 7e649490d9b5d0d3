"""GET /health: the platform's dependencies, in detail only for the metrics token."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents_app.api.health import health_report
from infra.metrics import metrics_token_given


class HealthOutput(serializers.Serializer):
    """What ``GET /health`` answers."""

    status = serializers.ChoiceField(choices=["ok", "unavailable"])
    checks = serializers.DictField(
        child=serializers.CharField(),
        required=False,
        help_text='With the metrics token only: each dependency, "ok" or its error.',
    )
    failing = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="With the metrics token only: the failing ones."
    )


class HealthView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(
        responses={200: HealthOutput, 503: HealthOutput},
        operation_id="health",
        auth=[],
        description="`ok` when the database, the session store and the broker answer, `unavailable` when"
        " one does not. Which one, and why, only with `Authorization: Bearer <AK_METRICS__TOKEN>`.",
    )
    def get(self, request: Request) -> Response:
        report = health_report()
        body = report if metrics_token_given(request) else {"status": report["status"]}
        return Response(body, status=200 if report["status"] == "ok" else 503)
