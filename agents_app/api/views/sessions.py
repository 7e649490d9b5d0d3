"""A session's endpoints: its runs, its messages, its deletion."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents_app.api import serializers as s
from agents_app.api.schema import SESSION_ID, errors
from agents_app.selectors import run_list
from sessions_app.selectors import session_get
from sessions_app.services import session_delete, session_messages_read


class SessionRunsView(APIView):
    @extend_schema(
        parameters=[SESSION_ID, s.RunPageInput],
        responses={200: s.RunPageOutput},
        operation_id="session_runs",
    )
    def get(self, request: Request, session_id: str) -> Response:
        query = s.validated(s.RunPageInput, request.query_params)
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
        query = s.validated(s.MessagePageInput, request.query_params)
        session = session_get(tenant=request.user.tenant, session_id=session_id)
        page = session_messages_read(session=session, start=int(query.get("cursor", 0)), limit=query["limit"])
        return Response(
            {
                "messages": s.MessageOutput(page.messages, many=True).data,
                "next": None if page.next_start is None else str(page.next_start),
            }
        )
