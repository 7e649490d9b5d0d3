"""A run as its tenant sees it: what ``GET /runs/<id>`` answers and what a webhook POSTs."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agents_app.models import Run


class UsageOutput(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()


#: CONTRACT's ``pause`` object, as the document describes it.
PAUSE_SCHEMA: dict[str, Any] = {
    "nullable": True,
    "description": "What a `paused` run waits for (null otherwise): tool calls to approve or deny"
    " (`approval`), or an answer to a question (`input`). `POST /runs/<run_id>/resume` answers it.",
    "oneOf": [
        {
            "type": "object",
            "required": ["kind", "requests"],
            "properties": {
                "kind": {"type": "string", "pattern": "^approval$"},
                "requests": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["id", "tool", "arguments"],
                        "properties": {
                            "id": {"type": "string"},
                            "tool": {"type": "string"},
                            "arguments": {"type": "object", "additionalProperties": {}},
                        },
                    },
                },
            },
        },
        {
            "type": "object",
            "required": ["kind", "prompt"],
            "properties": {"kind": {"type": "string", "pattern": "^input$"}, "prompt": {"nullable": True}},
        },
    ],
}


@extend_schema_field(PAUSE_SCHEMA)
class PauseField(serializers.Field):
    """The run's ``pause`` while it is paused; null otherwise (it is kept on the row meanwhile, for
    its resume)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, run: Run) -> dict[str, Any] | None:
        return run.pause if run.status == Run.Status.PAUSED else None


class RunOutput(serializers.ModelSerializer):
    """Not which process ran it (``worker``, the admin's), nor anything else of the platform's."""

    run_id = serializers.CharField(source="id")
    session_id = serializers.CharField(source="session.session_id")
    agent = serializers.CharField(source="agent.name")
    usage = UsageOutput(allow_null=True, read_only=True, help_text="Tokens the model reported, when it did.")
    pause = PauseField()

    class Meta:
        model = Run
        fields = [
            "run_id",
            "session_id",
            "agent",
            "status",
            "result",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "cancel_requested_at",
            "attempts",
            "webhook_status",
            "usage",
            "pause",
            "paused_at",
        ]
        extra_kwargs = {
            "cancel_requested_at": {"help_text": "When a cancel was asked for (`POST /runs/<run_id>/cancel`)."},
            "paused_at": {"help_text": "When it last paused to wait for a person."},
            "started_at": {"help_text": "When it started, or its latest resume did."},
        }
