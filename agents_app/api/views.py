"""Thin views: validate, call a service, shape the answer."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator
from typing import Any

from django.conf import settings
from django.http import Http404, StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents_app import limits, patterns
from agents_app.api import serializers as s
from agents_app.api.asyncview import AsyncAPIView
from agents_app.api.errors import RequestTooLarge
from agents_app.api.health import health_report
from agents_app.api.renderers import NO_FORMAT_PARAMETER, EventStreamViewMixin
from agents_app.api.schema import errors
from agents_app.models import Agent, Run
from agents_app.patterns import anchored
from agents_app.runs.submit import RunRequest, run_submit
from agents_app.selectors import (
    agent_find,
    agent_list,
    run_events,
    run_get,
    run_list,
    secret_list,
)
from agents_app.services import (
    AgentExists,
    AgentInvalid,
    BuiltinAgent,
    InUse,
    agent_create,
    agent_delete,
    agent_ensure_builtins,
    agent_update,
    run_cancel,
    secret_delete,
    secret_set,
)
from infra.io_threads import db
from infra.metrics import metrics_token_given
from sessions_app.selectors import session_get
from sessions_app.services import session_delete, session_messages_read
from sessions_app.stores.events import Event


def _check_size(message: str) -> None:
    limit = settings.AK_RUN["MAX_MESSAGE_BYTES"]
    if len(message.encode()) > limit:
        raise RequestTooLarge(f"The message is over {limit} bytes.")


def _validated(serializer_class: type[s.serializers.Serializer], data: object) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


IDEMPOTENCY_KEY = r"[\u0021-\u007e]{1,255}"
IDEMPOTENCY_KEY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=False,
    pattern=anchored(IDEMPOTENCY_KEY),
    description="1 to 255 printable ASCII characters: the same key with the same body answers as the first"
    " request did (nothing runs again); with another body, 409.",
)
LAST_EVENT_ID = r"[0-9]{1,12}"


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not re.fullmatch(IDEMPOTENCY_KEY, key):
        raise ValidationError({"Idempotency-Key": ["Use 1 to 255 printable ASCII characters, no spaces."]})
    return key


def _fingerprint(data: dict[str, Any]) -> str:
    """What makes two requests "the same" for an Idempotency-Key: their validated bodies."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _queued(request: Request, run: Run) -> Response:
    location = request.build_absolute_uri(reverse("run-detail", args=[run.pk]))
    body = {"run_id": str(run.pk), "session_id": run.session.session_id, "status": run.status}
    return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": location})


def _replay(request: Request, run: Run) -> Response:
    """The answer to a request repeated with its Idempotency-Key: the first one's, nothing run."""
    if run.is_async:
        return _queued(request, run)
    if run.status == Run.Status.SUCCEEDED:
        return Response({"result": run.result, "session_id": run.session.session_id, "run_id": str(run.pk)})
    detail = f"The run this Idempotency-Key made is {run.status}."
    return Response({"code": "idempotency_replay", "detail": detail, "run_id": str(run.pk)}, status=409)


RUN_ID = OpenApiParameter("run_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
SESSION_ID = OpenApiParameter(
    "session_id",
    {
        "type": "string",
        "pattern": anchored(patterns.SESSION_ID),
        "maxLength": settings.AK_RUN["SESSION_ID_MAX_LENGTH"],
    },
    OpenApiParameter.PATH,
)


class RunView(EventStreamViewMixin, AsyncAPIView):
    @extend_schema(
        request=s.RunInput,
        parameters=[IDEMPOTENCY_KEY_HEADER, NO_FORMAT_PARAMETER],
        responses={
            (200, "application/json"): s.RunResultOutput,
            (200, "text/event-stream"): s.StreamEventOutput,
            (202, "application/json"): s.QueuedRunOutput,
            **errors(403, 404, 409, 502, 503, 504),
        },
        operation_id="run",
        description="Runs the agent now (200), queues the run (`async`: 202, `Location` names it), or streams it"
        " (`stream`: 200 `text/event-stream`, each event as `StreamEventOutput` describes it).",
    )
    async def post(self, request: Request) -> Response:
        data = _validated(s.RunInput, request.data)
        _check_size(data["message"])
        mode = "queued" if data["run_async"] else "stream" if data["stream"] else "sync"
        run_request = RunRequest(
            agent=data["agent"],
            message=data["message"],
            session_id=data.get("session_id"),
            user_id=data.get("user_id"),
            mode=mode,
            on_busy=data["on_busy"],
            idempotency_key=_idempotency_key(request),
            request_hash=_fingerprint(data),
            webhook_url=data.get("webhook", ""),
            cancel_on_disconnect=data["cancel_on_disconnect"],
        )
        submitted = await run_submit(run_request, tenant=request.user.tenant)
        run = submitted.run
        if not submitted.created:
            return _replay(request, run)
        if submitted.events is not None:
            return event_stream(submitted.events)
        if run.is_async:
            return _queued(request, run)
        return Response({"result": run.result, "session_id": run.session.session_id, "run_id": str(run.pk)})


def event_stream(events: AsyncIterator[Event | None]) -> StreamingHttpResponse:
    """Server-Sent Events: ``id:``, ``event:`` and ``data:`` (JSON) per event; a comment when
    ``events`` yields None, to keep the connection open."""

    async def lines() -> AsyncIterator[bytes]:
        async for event in events:
            if event is None:
                yield b": keep-alive\n\n"
            else:
                data = json.dumps(event.data, separators=(",", ":"))
                yield f"id: {event.id}\nevent: {event.kind}\ndata: {data}\n\n".encode()

    response = StreamingHttpResponse(lines(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # proxies: pass each event on as it comes
    return response


class RunEventsView(EventStreamViewMixin, AsyncAPIView):
    @extend_schema(
        parameters=[
            RUN_ID,
            NO_FORMAT_PARAMETER,
            OpenApiParameter(
                "Last-Event-ID",
                str,
                OpenApiParameter.HEADER,
                required=False,
                pattern=anchored(LAST_EVENT_ID),
                description="Resume after this event.",
            ),
        ],
        responses={
            (200, "text/event-stream"): s.StreamEventOutput,
            204: OpenApiResponse(description="`Last-Event-ID` is at or after the last event of a run that has ended."),
            **errors(503),
        },
        operation_id="run_events",
        description="The run's events as Server-Sent Events, from its start or after `Last-Event-ID`, until it"
        " ends: a queued run's too, executed by any worker. `204` when `Last-Event-ID` is at or after the last"
        " event of a run that has ended: there is nothing more to send (an `EventSource` stops there).",
    )
    async def get(self, request: Request, run_id: str) -> StreamingHttpResponse | Response:
        after = request.headers.get("Last-Event-ID", "0")
        if not re.fullmatch(LAST_EVENT_ID, after):  # ASCII digits: isdigit() also takes "²", which int() refuses
            raise ValidationError({"Last-Event-ID": ["Not an event id."]})
        run = await db(run_get, tenant=request.user.tenant, run_id=run_id)
        slot = await limits.stream_slot(tenant=request.user.tenant)  # 429 when the tenant's streams are all open
        try:
            events = await run_events(run=run, tenant=request.user.tenant, after=int(after))
        except BaseException:
            await limits.release(slot)
            raise
        if events is None:  # the client has seen the run's end: 204 stops an EventSource
            await limits.release(slot)
            return Response(status=status.HTTP_204_NO_CONTENT)
        return event_stream(limits.holding(slot, events))


class ChatView(AsyncAPIView):
    @extend_schema(
        request=s.ChatInput,
        responses={200: s.ChatOutput, **errors(403, 404, 409, 502, 503, 504)},
        operation_id="chat",
        description="Agent Kernel's `POST /api/v1/chat`: runs the agent now and answers its reply.",
    )
    async def post(self, request: Request) -> Response:
        data = _validated(s.ChatInput, request.data)
        _check_size(data["prompt"])
        run_request = RunRequest(
            agent=data["agent"], message=data["prompt"], session_id=data.get("session_id"), user_id=data.get("user_id")
        )
        run = (await run_submit(run_request, tenant=request.user.tenant)).run
        return Response({"result": run.result, "session_id": run.session.session_id})


class RunDetailView(AsyncAPIView):
    @extend_schema(
        parameters=[RUN_ID],
        responses={200: s.RunOutput},
        operation_id="run_get",
        description="The run: its status, and its result or error once it has ended.",
    )
    async def get(self, request: Request, run_id: str) -> Response:
        run = await db(run_get, tenant=request.user.tenant, run_id=run_id)
        return Response(s.RunOutput(run).data)


class RunCancelView(APIView):
    @extend_schema(
        parameters=[RUN_ID],
        request=None,
        responses={
            200: OpenApiResponse(
                s.RunOutput, description="It had ended (it stays as it was), or was queued: now `cancelled`."
            ),
            202: OpenApiResponse(
                s.RunOutput,
                description="It is running: the cancel is asked for"
                " (`cancel_requested_at`), and it ends `cancelled` shortly.",
            ),
            **errors(503),
        },
        operation_id="run_cancel",
    )
    def post(self, request: Request, run_id: str) -> Response:
        run = run_cancel(run=run_get(tenant=request.user.tenant, run_id=run_id))
        running = run.status == Run.Status.RUNNING  # the cancel is asked for; its process stops it
        return Response(s.RunOutput(run).data, status=status.HTTP_202_ACCEPTED if running else status.HTTP_200_OK)


class SessionRunsView(APIView):
    @extend_schema(
        parameters=[SESSION_ID, s.RunPageInput],
        responses={200: s.RunPageOutput},
        operation_id="session_runs",
    )
    def get(self, request: Request, session_id: str) -> Response:
        query = _validated(s.RunPageInput, request.query_params)
        limit, before = query["limit"], query.get("cursor")
        runs = run_list(tenant=request.user.tenant, session_id=session_id, limit=limit + 1, before=before)
        page, more = runs[:limit], len(runs) > limit
        next_cursor = s.run_cursor(page[-1]) if more else None
        return Response({"runs": s.RunOutput(page, many=True).data, "next": next_cursor})


class SessionView(APIView):
    @extend_schema(parameters=[SESSION_ID], responses={204: None, **errors(503)}, operation_id="session_delete")
    def delete(self, request: Request, session_id: str) -> Response:
        session_delete(session=session_get(tenant=request.user.tenant, session_id=session_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SessionMessagesView(APIView):
    @extend_schema(
        parameters=[SESSION_ID, s.MessagePageInput],
        responses={200: s.MessagePageOutput, **errors(503)},
        operation_id="session_messages",
    )
    def get(self, request: Request, session_id: str) -> Response:
        query = _validated(s.MessagePageInput, request.query_params)
        session = session_get(tenant=request.user.tenant, session_id=session_id)
        page = session_messages_read(session=session, start=int(query.get("cursor", 0)), limit=query["limit"])
        return Response(
            {
                "messages": s.MessageOutput(page.messages, many=True).data,
                "next": None if page.next_start is None else str(page.next_start),
            }
        )


class AgentsView(APIView):
    @extend_schema(responses={200: s.AgentOutput(many=True)}, operation_id="agents_list")
    def get(self, request: Request) -> Response:
        agent_ensure_builtins(tenant=request.user.tenant)
        return Response(s.AgentOutput(agent_list(tenant=request.user.tenant), many=True).data)

    @extend_schema(request=s.AgentInput, responses={201: s.AgentOutput, **errors(403)}, operation_id="agents_create")
    def post(self, request: Request) -> Response:
        data = _validated(s.AgentInput, request.data)
        try:
            agent = agent_create(tenant=request.user.tenant, **data)
        except AgentInvalid as exc:  # CONTRACT: every bad field of the config named
            raise ValidationError(exc.fields) from None
        except AgentExists as exc:  # CONTRACT: an invalid body is a 400 naming the field
            raise ValidationError({"name": [str(exc)]}) from None
        return Response(s.AgentOutput(agent).data, status=status.HTTP_201_CREATED)


AGENT_NAME = OpenApiParameter("name", {"type": "string", "pattern": anchored(patterns.NAME)}, OpenApiParameter.PATH)


def _agent(request: Request, name: str) -> Agent:
    agent_ensure_builtins(tenant=request.user.tenant)
    return agent_find(tenant=request.user.tenant, name=name)


def _refused(exc: InUse | BuiltinAgent) -> Response:
    """409: the agents that use it (``in_use``), or a built-in agent (``builtin_agent``)."""
    if isinstance(exc, InUse):
        return Response({"code": "in_use", "detail": str(exc), "agents": exc.agents}, status=status.HTTP_409_CONFLICT)
    return Response({"code": "builtin_agent", "detail": str(exc)}, status=status.HTTP_409_CONFLICT)


class AgentView(APIView):  # one agent of the tenant; the built-in echo is read-only (409 builtin_agent)
    @extend_schema(parameters=[AGENT_NAME], responses={200: s.AgentOutput}, operation_id="agents_get")
    def get(self, request: Request, name: str) -> Response:
        return Response(s.AgentOutput(_agent(request, name)).data)

    @extend_schema(
        parameters=[AGENT_NAME],
        request=s.AgentUpdateInput,
        responses={200: s.AgentOutput, **errors(409)},
        operation_id="agents_update",
        description="A new `framework` and/or `config` (the whole config, replaced), checked whole as when the"
        " agent was made; the agent's next run uses them. 409 `in_use` when a new framework cannot take the"
        " handoffs other agents make to it; 409 `builtin_agent` for `echo`.",
    )
    def patch(self, request: Request, name: str) -> Response:
        data = _validated(s.AgentUpdateInput, request.data)
        try:
            agent = agent_update(agent=_agent(request, name), **data)
        except AgentInvalid as exc:
            raise ValidationError(exc.fields) from None
        except (InUse, BuiltinAgent) as exc:
            return _refused(exc)
        return Response(s.AgentOutput(agent).data)

    @extend_schema(
        parameters=[AGENT_NAME],
        responses={204: None, **errors(409)},
        operation_id="agents_delete",
        description="Deletes the agent (its runs and sessions stay). 409 `in_use` naming the agents that hand off to"
        " it; 409 `builtin_agent` for `echo`.",
    )
    def delete(self, request: Request, name: str) -> Response:
        try:
            agent_delete(agent=_agent(request, name))
        except (InUse, BuiltinAgent) as exc:
            return _refused(exc)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SecretsView(APIView):
    """A tenant's secrets: names and dates out, values only in (stored encrypted, never returned)."""

    @extend_schema(responses={200: s.SecretListOutput}, operation_id="secrets_list")
    def get(self, request: Request) -> Response:
        return Response({"secrets": s.SecretOutput(secret_list(tenant=request.user.tenant), many=True).data})

    @extend_schema(
        request=s.SecretInput,
        responses={201: s.SecretOutput, **errors(403)},
        operation_id="secrets_set",
        description="Stores the secret; a name that exists is rotated (the new value replaces the old).",
    )
    def post(self, request: Request) -> Response:
        data = _validated(s.SecretInput, request.data)
        secret = secret_set(tenant=request.user.tenant, name=data["name"], value=data["value"])
        return Response(s.SecretOutput(secret).data, status=status.HTTP_201_CREATED)  # CONTRACT: 201, set or rotated


class SecretView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("name", {"type": "string", "pattern": anchored(patterns.NAME)}, OpenApiParameter.PATH)
        ],
        responses={204: None, **errors(409)},
        operation_id="secrets_delete",
        description="Deletes the secret; 409 `in_use` naming the agents whose configs name it.",
    )
    def delete(self, request: Request, name: str) -> Response:
        try:
            deleted = secret_delete(tenant=request.user.tenant, name=name)
        except InUse as exc:
            return _refused(exc)
        if not deleted:
            raise Http404("unknown secret")
        return Response(status=status.HTTP_204_NO_CONTENT)


class HealthView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(
        responses={200: s.HealthOutput, 503: s.HealthOutput},
        operation_id="health",
        auth=[],
        description="`ok` when the database, the session store and the broker answer, `unavailable` when"
        " one does not. Which one, and why, only with `Authorization: Bearer <AK_METRICS__TOKEN>`.",
    )
    def get(self, request: Request) -> Response:
        report = health_report()
        body = report if metrics_token_given(request) else {"status": report["status"]}
        return Response(body, status=200 if report["status"] == "ok" else 503)
