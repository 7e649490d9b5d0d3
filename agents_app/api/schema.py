"""The OpenAPI document's own parts (loaded on app ready): the API-key scheme, the errors of every
operation (``AutoSchema``, the project's ``DEFAULT_SCHEMA_CLASS``), and what a serializer's fields
cannot say alone (a run's options that go together, an agent's config per framework)."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from drf_spectacular import openapi
from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerExtension
from drf_spectacular.utils import OpenApiParameter

from agents_app import patterns
from agents_app.patterns import anchored


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "agents_app.api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: object) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <api key>"}


#: What each error status means, for every operation that may answer it.
ERRORS: dict[int, str] = {
    400: "Invalid input (`invalid`): `fields` names each bad field with its messages (a resume's: each request"
    " id that is missing, unknown or decided twice).",
    401: "No API key, or not a valid one (`not_authenticated`, `authentication_failed`).",
    403: "A limit of the tenant is reached (`limit_reached`, `limit` names it: `agents`, `secrets`, `sessions` or"
    " `schedules`): nothing was stored.",
    404: "Not found (`not_found`): no such agent, session, run, secret or schedule in the tenant (another"
    " tenant's too).",
    409: "A conflict: the session has a paused run (`run_paused`, with its `run_id`: resume it, cancel it, or"
    ' send `"on_paused": "cancel"`), a resume of a run that is not paused (`run_not_paused`), the session is'
    " busy and `on_busy` is `reject` (`session_busy`), it changed during the run"
    " (`session_changed`), an `Idempotency-Key` used with another body (`idempotency_conflict`) or whose run did"
    " not succeed (`idempotency_replay`, with `run_id`), a sync run cancelled (`run_cancelled`), a session whose"
    " history is no longer in the store (`session_expired`: nothing ran, the session starts over on the next"
    " message), a name taken (`agent_exists`), a secret or an agent that other agents use (`in_use`, with"
    " `agents` naming them), the built-in agent (`builtin_agent`).",
    413: "Too large (`too_large`): the message is over `AK_RUN__MAX_MESSAGE_BYTES` bytes, or the body over what"
    " the server reads.",
    415: "The body is not `application/json` (`unsupported_media_type`).",
    429: "Throttled (`throttled`): the tenant's rate, or too many failed authentications from the address; or"
    " a limit of the tenant is reached (`limit_reached`, `limit` names it: `concurrent_runs` or"
    " `event_streams`); or a budget of the tenant is used up (`budget_exceeded`, with `resets_at`: nothing"
    " was recorded). `Retry-After` says when to come back.",
    502: "The agent failed (`agent_failed`, with `run_id`): its model server failed or timed out; nothing was saved.",
    503: "The session store or the broker is down (`store_unavailable`, `store_error`, `broker_unavailable`):"
    " nothing was queued or saved.",
    504: "A sync run went over `AK_RUN__TIME_LIMIT` (`run_timeout`, with `run_id`).",
}


def errors(*codes: int) -> dict[int, Any]:
    """The errors an operation answers besides those ``AutoSchema`` infers, for its
    ``extend_schema(responses=...)``: ``{**errors(404, 503)}``."""
    from agents_app.api.serializers import ErrorOutput

    return dict.fromkeys(codes, ErrorOutput)


def _links(source: str, **operations: str) -> dict[str, Any]:
    """OpenAPI links: ``{LinkName: operationId}``, whose one parameter is ``source``'s field."""
    parameter = {"run_id": "run_id", "session_id": "session_id", "name": "name", "schedule_id": "schedule_id"}[source]
    return {
        name: {"operationId": operation, "parameters": {parameter: f"$response.body#/{source}"}}
        for name, operation in operations.items()
    }


def _agent_links(pointer: str) -> dict[str, Any]:
    """Links to the operations that run, read, change or delete the agent at ``pointer`` (its
    name) in the answer."""
    body = {"agent": f"$response.body#{pointer}"}
    name = {"name": f"$response.body#{pointer}"}
    return {
        "RunAgent": {"operationId": "run", "requestBody": body},
        "ChatAgent": {"operationId": "chat", "requestBody": body},
        "GetAgent": {"operationId": "agents_get", "parameters": name},
        "UpdateAgent": {"operationId": "agents_update", "parameters": name},
        "DeleteAgent": {"operationId": "agents_delete", "parameters": name},
    }


_SESSION_LINKS = _links("session_id", Messages="session_messages", Runs="session_runs", Delete="session_delete")
_RUN_LINKS = _links("run_id", Run="run_get", Events="run_events", Cancel="run_cancel", Resume="run_resume")
_SECRET_LINKS = _links("name", Delete="secrets_delete")
_SCHEDULE_LINKS = _links(
    "schedule_id", Get="schedules_get", Update="schedules_update", Delete="schedules_delete", Runs="schedule_runs"
)
#: What an answer names, and where to use it next: ``{operationId: {status: links}}``.
LINKS: dict[str, dict[str, dict[str, Any]]] = {
    "agents_list": {"200": _agent_links("/0/name")},
    "agents_create": {"201": _agent_links("/name")},
    "agents_get": {"200": _agent_links("/name")},
    "agents_update": {"200": _agent_links("/name")},
    "run": {"200": {**_RUN_LINKS, **_SESSION_LINKS}, "202": {**_RUN_LINKS, **_SESSION_LINKS}},
    "chat": {"200": _SESSION_LINKS},
    "run_get": {"200": _SESSION_LINKS},
    "run_resume": {"200": {**_RUN_LINKS, **_SESSION_LINKS}, "202": {**_RUN_LINKS, **_SESSION_LINKS}},
    "secrets_set": {"201": _SECRET_LINKS},
    "schedules_create": {"201": _SCHEDULE_LINKS},
    "schedules_get": {"200": _SCHEDULE_LINKS},
    "schedules_update": {"200": _SCHEDULE_LINKS},
}


def _json_schema(response: dict[str, Any]) -> Any:
    return response.get("content", {}).get("application/json", {}).get("schema")


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's, with every operation's errors documented as ``ErrorOutput``: those its
    view names with ``errors(...)`` and those it infers (400 for input, 401 and 429 for a key, 404
    for a path parameter, 413 and 415 for a body); and the links from an answer to the operations
    that take what it names. A view whose ``body_required`` is true says its body is required even
    when none of its fields is alone."""

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        from agents_app.api.serializers import ErrorOutput

        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        if getattr(self.view, "body_required", False) and "requestBody" in operation:
            operation["requestBody"]["required"] = True  # its fields are each optional, the body is not
        responses = operation["responses"]
        schema = self.resolve_serializer(ErrorOutput, "response").ref
        codes = {int(code) for code, response in responses.items() if _json_schema(response) == schema}
        locations = {parameter["in"] for parameter in operation.get("parameters", [])}
        if "requestBody" in operation:
            codes |= {400, 413, 415}
        if locations & {"query", "header"}:
            codes.add(400)
        if "path" in locations:
            codes.add(404)
        if self.view.authentication_classes:
            codes |= {401, 429}
        for code in codes:
            responses[str(code)] = {
                "description": ERRORS[code],
                "content": {"application/json": {"schema": schema}},
            }
        for code, links in LINKS.get(operation["operationId"], {}).items():
            responses[code]["links"] = links
        operation["responses"] = dict(sorted(responses.items()))
        return operation


class RunInputScheme(OpenApiSerializerExtension):
    """``POST /run``'s options that go together (``RunInput.validate``): ``webhook`` needs
    ``async``; ``stream`` and ``async`` are not both true."""

    target_class = "agents_app.api.serializers.RunInput"

    def map_serializer(self, auto_schema: openapi.AutoSchema, direction: str) -> dict[str, Any]:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        # "not" around the enums: drf-spectacular makes a component of every property's enum.
        true, false = {"not": {"enum": [False]}}, {"not": {"enum": [True]}}
        schema["anyOf"] = [
            {"required": ["async"], "properties": {"async": true, "stream": false}},
            {"properties": {"async": false, "webhook": {"not": {}}}},
        ]
        return schema


class ScheduleInputScheme(OpenApiSerializerExtension):
    """``POST /schedules``: exactly one of ``cron`` and ``at`` (``ScheduleInput.validate``)."""

    target_class = "agents_app.api.schedule_serializers.ScheduleInput"

    def map_serializer(self, auto_schema: openapi.AutoSchema, direction: str) -> dict[str, Any]:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema["oneOf"] = [{"required": ["cron"]}, {"required": ["at"]}]
        return schema


class ScheduleUpdateInputScheme(OpenApiSerializerExtension):
    """``PATCH /schedules/<id>``: not both ``cron`` and ``at``."""

    target_class = "agents_app.api.schedule_serializers.ScheduleUpdateInput"

    def map_serializer(self, auto_schema: openapi.AutoSchema, direction: str) -> dict[str, Any]:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema["not"] = {"required": ["cron", "at"]}
        return schema


class ResumeInputScheme(OpenApiSerializerExtension):
    """``POST /runs/<run_id>/resume`` (``ResumeInput.validate``): exactly one of ``decisions`` and
    ``input``; ``stream`` and ``async`` are not both true."""

    target_class = "agents_app.api.serializers.ResumeInput"

    def map_serializer(self, auto_schema: openapi.AutoSchema, direction: str) -> dict[str, Any]:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        true = {"not": {"enum": [False]}}
        schema["oneOf"] = [{"required": ["decisions"]}, {"required": ["input"]}]
        schema["not"] = {"required": ["async", "stream"], "properties": {"async": true, "stream": true}}
        return schema


class QueuedOrPausedScheme(OpenApiSerializerExtension):
    """A 202 of ``POST /run`` or a resume: a queued run's three fields, or a paused run, whole."""

    target_class = "agents_app.api.serializers.QueuedOrPausedOutput"

    def map_serializer(self, auto_schema: openapi.AutoSchema, direction: str) -> dict[str, Any]:
        from agents_app.api.serializers import QueuedRunOutput, RunOutput

        refs = [auto_schema.resolve_serializer(c, direction).ref for c in (QueuedRunOutput, RunOutput)]
        return {"anyOf": refs}


def with_compaction(config: dict[str, Any]) -> dict[str, Any]:
    """A framework's config schema with the ``compaction`` option every framework takes."""
    from agents_app.compaction.config import COMPACTION, SCHEMA

    if "properties" not in config:
        return config
    return {**config, "properties": {**config["properties"], COMPACTION: SCHEMA}}


def _framework_branches(*, framework_required: bool) -> list[dict[str, Any]]:
    """One branch per framework: ``framework`` is its name and ``config`` as it takes it
    (``Framework.config_schema``; required when the framework requires a key, on creation)."""
    from agents_app.frameworks import framework_names, get_framework

    branches = []
    for name in framework_names():
        config = with_compaction(get_framework(name).config_schema())
        # A pattern, not an enum: drf-spectacular makes a component of every property's enum.
        framework = {"type": "string", "pattern": f"^(?:{re.escape(name)})$"}
        branch: dict[str, Any] = {"properties": {"framework": framework, "config": config}}
        if framework_required:
            branch["required"] = ["framework"]
        elif config.get("required"):
            branch["required"] = ["config"]
        branches.append(branch)
    return branches


def _with_frameworks(schema: dict[str, Any]) -> dict[str, Any]:
    from agents_app.frameworks import framework_names

    schema["properties"]["framework"] = {**schema["properties"]["framework"], "enum": framework_names()}
    return schema


class AgentInputScheme(OpenApiSerializerExtension):
    """``POST /agents``: ``framework`` one of the deployment's, ``config`` as that framework takes
    it (``Framework.config_schema``; required when the framework requires a key)."""

    target_class = "agents_app.api.serializers.AgentInput"

    def map_serializer(self, auto_schema: openapi.AutoSchema, direction: str) -> dict[str, Any]:
        schema = _with_frameworks(auto_schema._map_serializer(self.target, direction, bypass_extensions=True))
        schema["oneOf"] = _framework_branches(framework_required=False)
        return schema


class AgentUpdateInputScheme(OpenApiSerializerExtension):
    """``PATCH /agents/<name>``: with a ``framework``, ``config`` (if given) as that framework takes
    it; without one, any object (the agent's own framework checks it)."""

    target_class = "agents_app.api.serializers.AgentUpdateInput"

    def map_serializer(self, auto_schema: openapi.AutoSchema, direction: str) -> dict[str, Any]:
        schema = _with_frameworks(auto_schema._map_serializer(self.target, direction, bypass_extensions=True))
        schema["oneOf"] = [*_framework_branches(framework_required=True), {"not": {"required": ["framework"]}}]
        return schema


#: A session id in a path: the same pattern and length as a run's ``session_id``.
SESSION_ID = OpenApiParameter(
    "session_id",
    {
        "type": "string",
        "pattern": anchored(patterns.SESSION_ID),
        "maxLength": settings.AK_RUN["SESSION_ID_MAX_LENGTH"],
    },
    OpenApiParameter.PATH,
)
