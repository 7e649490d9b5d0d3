"""Input and output serializers of the API. Inputs are strict: a number is not a string."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.validators import RegexValidator, URLValidator
from rest_framework import serializers

from agents_app.models import Agent, Run, Secret
from agents_app.outbound import refusal
from agents_app.secrets import SECRET_NAME_PATTERN, SECRET_VALUE_MAX_BYTES
from sessions_app.serializers import MessageOutput

SESSION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$"


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers and booleans instead of turning them into text."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


session_id_validator = RegexValidator(
    SESSION_ID_PATTERN, "Use letters, digits and . _ : @ - (starting with a letter or digit)."
)

secret_name_validator = RegexValidator(
    SECRET_NAME_PATTERN, "Use letters, digits and _ . - (starting with a letter or digit), at most 63."
)


def session_id_field(**kwargs: Any) -> StrictCharField:
    return StrictCharField(
        max_length=settings.AK_RUN["SESSION_ID_MAX_LENGTH"], validators=[session_id_validator], **kwargs
    )


class RunInput(serializers.Serializer):
    agent = StrictCharField(max_length=63)
    message = StrictCharField(trim_whitespace=False)
    session_id = session_id_field(required=False)
    user_id = StrictCharField(max_length=200, required=False)
    on_busy = serializers.ChoiceField(choices=["enqueue", "reject"], required=False, default="enqueue")
    webhook = StrictCharField(max_length=2048, required=False, validators=[URLValidator(schemes=["http", "https"])])
    stream = StrictBooleanField(
        required=False, default=False, help_text="Answer with Server-Sent Events as the reply is produced."
    )
    cancel_on_disconnect = StrictBooleanField(
        required=False, default=False, help_text="With `stream`: cancel the run if the client goes away."
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        # "async" is a Python keyword, so it cannot be a class attribute.
        fields = super().get_fields()
        fields["async"] = StrictBooleanField(required=False, default=False, source="run_async")
        return fields

    def validate_webhook(self, url: str) -> str:
        why = refusal(url)
        if why is not None:
            raise serializers.ValidationError(f"Not a webhook the platform will call: {why}.")
        return url

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if data.get("webhook") and not data["run_async"]:
            raise serializers.ValidationError({"webhook": ["A webhook needs an async run."]})
        if data["stream"] and data["run_async"]:
            raise serializers.ValidationError({"stream": ["Stream a queued run with GET /runs/<run_id>/events."]})
        return data


class QueuedRunOutput(serializers.Serializer):
    run_id = serializers.CharField()
    session_id = serializers.CharField()
    status = serializers.CharField()


class ChatInput(serializers.Serializer):
    """Agent Kernel's ``/api/v1/chat`` shape."""

    agent = StrictCharField(max_length=63)
    prompt = StrictCharField(trim_whitespace=False)
    session_id = session_id_field(required=False)
    user_id = StrictCharField(max_length=200, required=False)


class RunResultOutput(serializers.Serializer):
    result = serializers.CharField()
    session_id = serializers.CharField()
    run_id = serializers.CharField()


class ChatOutput(serializers.Serializer):
    result = serializers.CharField()
    session_id = serializers.CharField()


class UsageOutput(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()


class RunOutput(serializers.ModelSerializer):
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
            "attempts",
            "worker",
            "webhook_status",
            "usage",
        ]


class RunPageInput(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=200, required=False, default=50)
    cursor = serializers.CharField(required=False, max_length=80)

    def validate_cursor(self, cursor: str) -> tuple[datetime, uuid.UUID]:
        """``<created_at, ISO 8601 with offset>_<run id>``, as the previous page's ``next``."""
        at, _, run_id = cursor.partition("_")
        try:
            created_at, parsed_id = datetime.fromisoformat(at), uuid.UUID(run_id)
        except ValueError:
            raise serializers.ValidationError("Not a valid cursor.") from None
        if created_at.tzinfo is None:
            raise serializers.ValidationError("Not a valid cursor.")
        return created_at, parsed_id


class RunPageOutput(serializers.Serializer):
    runs = RunOutput(many=True)
    next = serializers.CharField(allow_null=True)


class MessagePageOutput(serializers.Serializer):
    messages = MessageOutput(many=True)
    next = serializers.CharField(allow_null=True)


class MessagePageInput(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=500, required=False, default=50)
    cursor = serializers.RegexField(r"^\d{1,12}$", required=False, error_messages={"invalid": "Not a valid cursor."})


class AgentInput(serializers.Serializer):
    name = serializers.RegexField(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    framework = StrictCharField(max_length=63)
    config = serializers.DictField(required=False, default=dict)


class AgentOutput(serializers.ModelSerializer):
    class Meta:
        model = Agent
        fields = ["name", "framework", "config", "created_at", "updated_at"]


class SecretInput(serializers.Serializer):
    name = StrictCharField(
        max_length=63, validators=[secret_name_validator], help_text='What an agent config names as `{"secret": NAME}`.'
    )
    value = StrictCharField(
        max_length=SECRET_VALUE_MAX_BYTES,
        trim_whitespace=False,
        write_only=True,
        help_text=f"Stored encrypted, as given; never returned. At most {SECRET_VALUE_MAX_BYTES} bytes (UTF-8).",
    )

    def validate_value(self, value: str) -> str:
        if len(value.encode()) > SECRET_VALUE_MAX_BYTES:  # the messages never quote the value
            raise serializers.ValidationError(f"Ensure this field has no more than {SECRET_VALUE_MAX_BYTES} bytes.")
        return value


class SecretOutput(serializers.ModelSerializer):
    class Meta:
        model = Secret
        fields = ["name", "created_at", "updated_at"]


class SecretListOutput(serializers.Serializer):
    secrets = SecretOutput(many=True)
