"""A tenant's schedules: ``/schedules``, one schedule, and the runs it made."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents_app.api import schedule_serializers as ss
from agents_app.api import serializers as s
from agents_app.api.errors import RequestTooLarge
from agents_app.api.schema import errors
from agents_app.models import Schedule
from agents_app.schedules.services import (
    ScheduleInvalid,
    schedule_create,
    schedule_delete,
    schedule_get,
    schedule_list,
    schedule_runs,
    schedule_update,
)

SCHEDULE_ID = OpenApiParameter("schedule_id", {"type": "string", "format": "uuid"}, OpenApiParameter.PATH)
NEXT_PAGE = OpenApiParameter(
    "Link",
    str,
    OpenApiParameter.HEADER,
    response=[200],
    description='`<URL>; rel="next"`: the next page (the same path with its `cursor`), when there is one.',
)


def _validated(serializer_class: type, request: Request) -> dict:
    """The body checked whole: a 400 naming each bad field, a 413 for a message over the limit."""
    data = s.validated(serializer_class, request.data)
    limit = settings.AK_RUN["MAX_MESSAGE_BYTES"]
    if len(data.get("message", "").encode()) > limit:
        raise RequestTooLarge(f"The message is over {limit} bytes.")
    return data


def _schedule(request: Request, schedule_id: str) -> Schedule:
    return schedule_get(tenant=request.user.tenant, schedule_id=schedule_id)


class SchedulesView(APIView):
    @extend_schema(
        responses={200: ss.ScheduleOutput(many=True)},
        operation_id="schedules_list",
        description="The tenant's schedules, newest first.",
    )
    def get(self, request: Request) -> Response:
        schedules = schedule_list(tenant=request.user.tenant)
        return Response(ss.ScheduleOutput(schedules, many=True).data)

    @extend_schema(
        request=ss.ScheduleInput,
        responses={201: ss.ScheduleOutput, **errors(403)},
        operation_id="schedules_create",
        description="Each due time makes one queued run of the agent (on `session_id`, or a new session each"
        " time), whatever the number of beat or worker processes. 400 naming the field for an unknown agent, a"
        " cron expression that does not parse, an unknown time zone or an `at` that is past.",
    )
    def post(self, request: Request) -> Response:
        data = _validated(ss.ScheduleInput, request)
        try:
            schedule = schedule_create(tenant=request.user.tenant, **data)
        except ScheduleInvalid as exc:
            raise ValidationError(exc.fields) from None
        return Response(ss.ScheduleOutput(schedule).data, status=status.HTTP_201_CREATED)


class ScheduleView(APIView):
    @extend_schema(parameters=[SCHEDULE_ID], responses={200: ss.ScheduleOutput}, operation_id="schedules_get")
    def get(self, request: Request, schedule_id: str) -> Response:
        return Response(ss.ScheduleOutput(_schedule(request, schedule_id)).data)

    @extend_schema(
        parameters=[SCHEDULE_ID],
        request=ss.ScheduleUpdateInput,
        responses={200: ss.ScheduleOutput},
        operation_id="schedules_update",
        description="Any of the fields: a `cron` makes it a cron schedule, an `at` a one-time one; a change of"
        " when it fires computes `next_run_at` anew (from now: no firing is made up for).",
    )
    def patch(self, request: Request, schedule_id: str) -> Response:
        data = _validated(ss.ScheduleUpdateInput, request)
        schedule = _schedule(request, schedule_id)
        try:
            schedule = schedule_update(schedule=schedule, **data)
        except ScheduleInvalid as exc:
            raise ValidationError(exc.fields) from None
        return Response(ss.ScheduleOutput(schedule).data)

    @extend_schema(
        parameters=[SCHEDULE_ID],
        responses={204: None},
        operation_id="schedules_delete",
        description="Deletes the schedule: it fires no more. The runs it made stay.",
    )
    def delete(self, request: Request, schedule_id: str) -> Response:
        schedule_delete(schedule=_schedule(request, schedule_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ScheduleRunsView(APIView):
    @extend_schema(
        parameters=[SCHEDULE_ID, s.RunPageInput, NEXT_PAGE],
        responses={200: s.RunOutput(many=True)},
        operation_id="schedule_runs",
        description="The runs the schedule made, newest first, each as `GET /runs/<run_id>` gives it: `limit`"
        " at a time, the next page named by the `Link` header.",
    )
    def get(self, request: Request, schedule_id: str) -> Response:
        query = s.validated(s.RunPageInput, request.query_params)
        schedule = _schedule(request, schedule_id)
        limit, before = query["limit"], query.get("cursor")
        runs = schedule_runs(schedule=schedule, limit=limit + 1, before=before)
        page, more = runs[:limit], len(runs) > limit
        response = Response(s.RunOutput(page, many=True).data)
        if more:
            query = urlencode({"limit": limit, "cursor": s.run_cursor(page[-1])})
            response["Link"] = f'<{request.build_absolute_uri(request.path)}?{query}>; rel="next"'
        return response
