"""A tenant's agents and secrets."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents_app import patterns
from agents_app.api import serializers as s
from agents_app.api.schema import errors
from agents_app.models import Agent
from agents_app.patterns import anchored
from agents_app.selectors import agent_find, agent_list, secret_list
from agents_app.services import (
    AgentExists,
    AgentInvalid,
    BuiltinAgent,
    InUse,
    agent_create,
    agent_delete,
    agent_ensure_builtins,
    agent_update,
    secret_delete,
    secret_set,
)


class AgentsView(APIView):
    @extend_schema(responses={200: s.AgentOutput(many=True)}, operation_id="agents_list")
    def get(self, request: Request) -> Response:
        agent_ensure_builtins(tenant=request.user.tenant)
        return Response(s.AgentOutput(agent_list(tenant=request.user.tenant), many=True).data)

    @extend_schema(request=s.AgentInput, responses={201: s.AgentOutput, **errors(403)}, operation_id="agents_create")
    def post(self, request: Request) -> Response:
        data = s.validated(s.AgentInput, request.data)
        try:
            agent = agent_create(tenant=request.user.tenant, **data)
        except AgentInvalid as exc:  # CONTRACT: every bad field of the config named
            raise ValidationError(exc.fields) from None
        except AgentExists as exc:  # CONTRACT: an invalid body is a 400 naming the field
            raise ValidationError({"name": [str(exc)]}) from None
        return Response(s.AgentOutput(agent).data, status=status.HTTP_201_CREATED)


NAME_PATH = OpenApiParameter("name", {"type": "string", "pattern": anchored(patterns.NAME)}, OpenApiParameter.PATH)


def _agent(request: Request, name: str) -> Agent:
    agent_ensure_builtins(tenant=request.user.tenant)
    return agent_find(tenant=request.user.tenant, name=name)


def _refused(exc: InUse | BuiltinAgent) -> Response:
    """409: the agents that use it (``in_use``), or a built-in agent (``builtin_agent``)."""
    if isinstance(exc, InUse):
        return Response({"code": "in_use", "detail": str(exc), "agents": exc.agents}, status=status.HTTP_409_CONFLICT)
    return Response({"code": "builtin_agent", "detail": str(exc)}, status=status.HTTP_409_CONFLICT)


class AgentView(APIView):  # one agent of the tenant; the built-in echo is read-only (409 builtin_agent)
    @extend_schema(parameters=[NAME_PATH], responses={200: s.AgentOutput}, operation_id="agents_get")
    def get(self, request: Request, name: str) -> Response:
        return Response(s.AgentOutput(_agent(request, name)).data)

    @extend_schema(
        parameters=[NAME_PATH],
        request=s.AgentUpdateInput,
        responses={200: s.AgentOutput, **errors(409)},
        operation_id="agents_update",
        description="A new `framework` and/or `config` (the whole config, replaced), checked whole as when the"
        " agent was made; the agent's next run uses them. 409 `in_use` when a new framework cannot take the"
        " handoffs other agents make to it; 409 `builtin_agent` for `echo`.",
    )
    def patch(self, request: Request, name: str) -> Response:
        data = s.validated(s.AgentUpdateInput, request.data)
        try:
            agent = agent_update(agent=_agent(request, name), **data)
        except AgentInvalid as exc:
            raise ValidationError(exc.fields) from None
        except (InUse, BuiltinAgent) as exc:
            return _refused(exc)
        return Response(s.AgentOutput(agent).data)

    @extend_schema(
        parameters=[NAME_PATH],
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
        data = s.validated(s.SecretInput, request.data)
        secret = secret_set(tenant=request.user.tenant, name=data["name"], value=data["value"])
        return Response(s.SecretOutput(secret).data, status=status.HTTP_201_CREATED)  # CONTRACT: 201, set or rotated


class SecretView(APIView):
    @extend_schema(
        parameters=[NAME_PATH],
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
