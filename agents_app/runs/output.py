"""A run as its tenant sees it: what ``GET /runs/<id>`` answers and what a webhook POSTs."""

from __future__ import annotations

from rest_framework import serializers

from agents_app.models import Run


class UsageOutput(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()


class RunOutput(serializers.ModelSerializer):
    """Not which process ran it (``worker``, the admin's), nor anything else of the platform's."""

    run_id = serializers.CharField(source="id")
    session_id = serializers.CharField(source="session.session_id")
    agent = serializers.CharField(source="agent.name")
    usage = UsageOutput(allow_null=True, read_only=True, help_text="Tokens the model reported, when it did.")

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
        ]
        extra_kwargs = {
            "cancel_requested_at": {"help_text": "When a cancel was asked for (`POST /runs/<run_id>/cancel`)."}
        }
