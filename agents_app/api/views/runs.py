"""The run endpoints: POST /run (sync, streamed, queued), the Agent Kernel chat route, a run's
state, events, cancel and resume. Thin: validate, build a ``RunRequest``, call ``run_submit``, shape the answer."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator
from typing import Any

from django.conf import settings
from django.http import StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents_app import limits
from agents_app.api import serializers as s
from agents_app.api.asyncview import AsyncAPIView
from agents_app.api.errors import RequestTooLarge
from agents_app.api.renderers import NO_FORMAT_PARAMETER, EventStreamViewMixin
from agents_app.api.schema import errors
from agents_app.models import Run
from agents_app.patterns import anchored
from agents_app.runs.resume import ResumeRequest, run_resume
from agents_app.runs.submit import RunRequest, run_submit
from agents_app.selectors import run_events, run_get
from agents_app.services import run_cancel
from infra.io_threads import db
from sessions_app.stores.events import Event


def _check_size(message: str) -> None:
    limit = settings.AK_RUN["MAX_MESSAGE_BYTES"]
    if len(message.encode()) > limit:
        raise RequestTooLarge(f"The message is over {limit} bytes.")


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


def _location(request: Request, run: Run) -> dict[str, str]:
    return {"Location": request.build_absolute_uri(reverse("run-detail", args=[run.pk]))}


def _queued(request: Request, run: Run) -> Response:
    body = {"run_id": str(run.pk), "session_id": run.session.session_id, "status": run.status}
    return Response(body, status=status.HTTP_202_ACCEPTED, headers=_location(request, run))


def _paused(request: Request, run: Run) -> Response:
    """A run that waits for a person: 202, the run (with its ``pause``), ``Location`` naming it."""
    return Response(s.RunOutput(run).data, status=status.HTTP_202_ACCEPTED, headers=_location(request, run))


def _answered(request: Request, run: Run) -> Response:
    """A sync run's answer: its result (200), or the run if it paused (202)."""
    if run.status == Run.Status.PAUSED:
        return _paused(request, run)
    return Response({"result": run.result, "session_id": run.session.session_id, "run_id": str(run.pk)})


def _replay(request: Request, run: Run) -> Response:
    """The answer to a request repeated with its Idempotency-Key: the first one's, nothing run."""
    if run.is_async:
        return _queued(request, run)
    if run.status in (Run.Status.SUCCEEDED, Run.Status.PAUSED):
        return _answered(request, run)
    detail = f"The run this Idempotency-Key made is {run.status}."
    return Response({"code": "idempotency_replay", "detail": detail, "run_id": str(run.pk)}, status=409)


RUN_ID = OpenApiParameter("run_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


class RunView(EventStreamViewMixin, AsyncAPIView):
    @extend_schema(
        request=s.RunInput,
        parameters=[IDEMPOTENCY_KEY_HEADER, NO_FORMAT_PARAMETER],
        responses={
            (200, "application/json"): s.RunResultOutput,
            (200, "text/event-stream"): s.StreamEventOutput,
            (202, "application/json"): s.QueuedOrPausedOutput,
            **errors(403, 404, 409, 502, 503, 504),
        },
        operation_id="run",
        description="Runs the agent now (200), queues the run (`async`: 202, `Location` names it), or streams it"
        " (`stream`: 200 `text/event-stream`, each event as `StreamEventOutput` describes it). A run that"
        " pauses to wait for a person answers 202 with the run (its `pause`; `Location` names it), or ends its"
        " stream with `paused`; `POST /runs/<run_id>/resume` goes on. 409 `run_paused` while the session has"
        ' a paused run (unless `"on_paused": "cancel"`).',
    )
    async def post(self, request: Request) -> Response:
        data = s.validated(s.RunInput, request.data)
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
            on_paused=data["on_paused"],
        )
        submitted = await run_submit(run_request, tenant=request.user.tenant)
        run = submitted.run
        if not submitted.created:
            return _replay(request, run)
        if submitted.events is not None:
            return event_stream(submitted.events)
        if run.is_async:
            return _queued(request, run)
        return _answered(request, run)


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
        responses={200: s.ChatOutput, 202: s.RunOutput, **errors(403, 404, 409, 502, 503, 504)},
        operation_id="chat",
        description="Agent Kernel's `POST /api/v1/chat`: runs the agent now and answers its reply (202 with the"
        " run when it pauses to wait for a person).",
    )
    async def post(self, request: Request) -> Response:
        data = s.validated(s.ChatInput, request.data)
        _check_size(data["prompt"])
        run_request = RunRequest(
            agent=data["agent"], message=data["prompt"], session_id=data.get("session_id"), user_id=data.get("user_id")
        )
        run = (await run_submit(run_request, tenant=request.user.tenant)).run
        if run.status == Run.Status.PAUSED:
            return _paused(request, run)
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
                s.RunOutput, description="It had ended (it stays as it was), or was queued or paused: now `cancelled`."
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


class RunResumeView(EventStreamViewMixin, AsyncAPIView):
    body_required = True  # ``decisions`` or ``input``: one of them, so a body

    @extend_schema(
        parameters=[RUN_ID, NO_FORMAT_PARAMETER],
        request=s.ResumeInput,
        responses={
            (200, "application/json"): s.RunResultOutput,
            (200, "text/event-stream"): s.StreamEventOutput,
            (202, "application/json"): s.QueuedOrPausedOutput,
            **errors(404, 409, 502, 503, 504),
        },
        operation_id="run_resume",
        description="A paused run goes on with the person's answer: a decision for each of its `pause.requests`"
        " (`decisions`), or the answer to its `pause.prompt` (`input`). As `POST /run`: 200 with its result, 202"
        " queued (`async`) or paused again (the run), or its events (`stream`). 409 `run_not_paused` when it is"
        " not paused (another resume or a cancel came first); 400 naming a request id that is missing or unknown.",
    )
    async def post(self, request: Request, run_id: str) -> Response | StreamingHttpResponse:
        data = s.validated(s.ResumeInput, request.data)
        mode = "queued" if data["run_async"] else "stream" if data["stream"] else "sync"
        resume_request = ResumeRequest(
            run_id=run_id,
            decisions=[dict(d) for d in data["decisions"]] if "decisions" in data else None,
            input=data.get("input"),
            has_input="input" in data,
            mode=mode,
            cancel_on_disconnect=data["cancel_on_disconnect"],
        )
        submitted = await run_resume(resume_request, tenant=request.user.tenant)
        if submitted.events is not None:
            return event_stream(submitted.events)
        if mode == "queued":
            return _queued(request, submitted.run)
        return _answered(request, submitted.run)
