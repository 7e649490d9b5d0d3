"""Input and output serializers of the API. Inputs are strict (a number is not a string, a string
is never trimmed), so that the OpenAPI document derived from them says exactly what is accepted."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty

from agents_app import patterns
from agents_app.models import Agent, Run, Secret
from agents_app.outbound import refusal
from agents_app.patterns import validator_regex
from agents_app.runs.output import RunOutput
from agents_app.secrets import SECRET_VALUE_MAX_BYTES
from sessions_app.serializers import MessageOutput


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
    validator_regex(patterns.SESSION_ID), "Use letters, digits and . _ : @ - (starting with a letter or digit)."
)
name_validator = RegexValidator(
    validator_regex(patterns.NAME), "Use letters, digits and _ . - (starting with a letter or digit), at most 63."
)
no_nul_validator = RegexValidator(validator_regex(patterns.NO_NUL), "Null characters are not allowed.")
not_blank_validator = RegexValidator(
    validator_regex(patterns.NOT_BLANK), "Give some text (not only spaces), without null characters."
)
url_validator = RegexValidator(
    validator_regex(patterns.URL), "Enter an http or https URL: a host name, a port, a path of printable ASCII."
)


def session_id_field(**kwargs: Any) -> StrictCharField:
    return StrictCharField(
        max_length=settings.AK_RUN["SESSION_ID_MAX_LENGTH"],
        trim_whitespace=False,
        validators=[session_id_validator],
        **kwargs,
    )


def name_field(**kwargs: Any) -> StrictCharField:
    return StrictCharField(max_length=63, trim_whitespace=False, validators=[name_validator], **kwargs)


def user_id_field() -> StrictCharField:
    return StrictCharField(
        max_length=200,
        trim_whitespace=False,
        required=False,
        validators=[not_blank_validator],
        help_text="Your id of the user who talks (not only spaces).",
    )


_MAX_MESSAGE = settings.AK_RUN["MAX_MESSAGE_BYTES"]


@extend_schema_field(
    {
        "type": "string",
        "maxLength": _MAX_MESSAGE,
        "description": f"At most {_MAX_MESSAGE} bytes of UTF-8 (`maxLength` counts characters, which take 1 to 4"
        " bytes each): a longer message is a 413.",
    }
)
class MessageField(StrictCharField):
    """A message, as sent (spaces kept). Over ``AK_RUN__MAX_MESSAGE_BYTES`` bytes of UTF-8 it is a
    413, from the view (not a 400 from a length validator)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(trim_whitespace=False, validators=[no_nul_validator], **kwargs)


class RunInput(serializers.Serializer):
    """With ``webhook``, ``async`` must be true; ``stream`` and ``async`` are not both true (the
    document says so too: ``agents_app.api.schema.RunInputScheme``)."""

    agent = name_field(help_text="The name of one of the tenant's agents.")
    message = MessageField()
    session_id = session_id_field(required=False)
    user_id = user_id_field()
    on_busy = serializers.ChoiceField(choices=["enqueue", "reject"], required=False, default="enqueue")
    webhook = StrictCharField(
        max_length=2048,
        trim_whitespace=False,
        required=False,
        validators=[url_validator],
        help_text="With `async`: POSTed the run when it ends. Refused (400) when its host resolves to a"
        " non-public address (unless the deployment allows them).",
    )
    stream = StrictBooleanField(
        required=False, default=False, help_text="Answer with Server-Sent Events as the reply is produced."
    )
    cancel_on_disconnect = StrictBooleanField(
        required=False, default=False, help_text="With `stream`: cancel the run if the client goes away."
    )
    on_paused = serializers.ChoiceField(
        choices=["reject", "cancel"],
        required=False,
        default="reject",
        help_text="When the session has a paused run: `reject` answers 409 `run_paused` (with its `run_id`);"
        " `cancel` cancels it first.",
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


class DecisionInput(serializers.Serializer):
    id = StrictCharField(
        max_length=200,
        trim_whitespace=False,
        validators=[no_nul_validator],
        help_text="The id of one of the run's requests.",
    )
    approve = StrictBooleanField()
    message = StrictCharField(
        max_length=4000,
        trim_whitespace=False,
        required=False,
        validators=[no_nul_validator],
        help_text="Why: the agent hears it (a denial's reason, say).",
    )


class ResumeInput(serializers.Serializer):
    """Exactly one of ``decisions`` (a paused run's approvals) and ``input`` (its question's answer);
    ``async`` and ``stream`` as ``RunInput``'s, not both (the document says so too:
    ``agents_app.api.schema.ResumeInputScheme``)."""

    decisions = DecisionInput(
        many=True, required=False, help_text="One decision for each request the run waits on (`pause.requests`)."
    )
    input = serializers.JSONField(required=False, allow_null=True, help_text="The answer to `pause.prompt`.")
    stream = StrictBooleanField(
        required=False, default=False, help_text="Answer with Server-Sent Events as the run goes on."
    )
    cancel_on_disconnect = StrictBooleanField(
        required=False, default=False, help_text="With `stream`: cancel the run if the client goes away."
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["async"] = StrictBooleanField(required=False, default=False, source="run_async")
        return fields

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if ("decisions" in data) == ("input" in data):
            raise serializers.ValidationError({"decisions": ["Send either decisions or input."]})
        if data["stream"] and data["run_async"]:
            raise serializers.ValidationError({"stream": ["Stream a queued run with GET /runs/<run_id>/events."]})
        return data


class QueuedRunOutput(serializers.Serializer):
    run_id = serializers.CharField()
    session_id = serializers.CharField()
    status = serializers.CharField()


class QueuedOrPausedOutput(serializers.Serializer):
    """A 202: a queued run (``QueuedRunOutput``), or a run that paused, whole (``RunOutput``, with
    its ``pause``); the document says either (``agents_app.api.schema.QueuedOrPausedScheme``)."""


class ChatInput(serializers.Serializer):
    """Agent Kernel's ``/api/v1/chat`` shape."""

    agent = name_field(help_text="The name of one of the tenant's agents.")
    prompt = MessageField()
    session_id = session_id_field(required=False)
    user_id = user_id_field()


class ChatOutput(serializers.Serializer):
    result = serializers.CharField()
    session_id = serializers.CharField()


class RunResultOutput(ChatOutput):
    run_id = serializers.CharField()


class QueryParameter:
    """A field of a query string where an empty value (``?cursor=``) is a value, and so refused
    (DRF takes it for an absent one), as the document says (``minLength``, ``type``)."""

    field_name: str

    def get_value(self, dictionary: Any) -> Any:
        return dictionary.get(self.field_name, empty)


class QueryIntegerField(QueryParameter, serializers.IntegerField):
    """An integer in a query string: ASCII digits only (``int`` also takes ``" 5"``, ``"+5"``,
    other scripts' digits, and DRF ``"5.0"``, none of which an integer parameter of the document allows)."""

    def to_internal_value(self, data: Any) -> int:
        if not isinstance(data, str) or not re.fullmatch(r"[0-9]{1,10}", data):
            self.fail("invalid")
        return super().to_internal_value(data)


class QueryCharField(QueryParameter, StrictCharField):
    pass


def cursor_field(pattern: str, **kwargs: Any) -> StrictCharField:
    return QueryCharField(
        required=False,
        trim_whitespace=False,
        validators=[RegexValidator(validator_regex(pattern), "Not a valid cursor.")],
        help_text="The `next` of the previous page.",
        **kwargs,
    )


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: ``<created_at in microseconds since 1970>_<run id>``: every string of this shape is a cursor.
RUN_CURSOR = r"[0-9]{1,16}_[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


def run_cursor(run: Run) -> str:
    """The cursor of the page after ``run``."""
    return f"{(run.created_at - EPOCH) // timedelta(microseconds=1)}_{run.pk}"


class RunPageInput(serializers.Serializer):
    limit = QueryIntegerField(min_value=1, max_value=200, required=False, default=50)
    cursor = cursor_field(RUN_CURSOR)

    def validate_cursor(self, cursor: str) -> tuple[datetime, uuid.UUID]:
        micros, _, run_id = cursor.partition("_")
        return EPOCH + timedelta(microseconds=int(micros)), uuid.UUID(run_id)


class RunPageOutput(serializers.Serializer):
    runs = RunOutput(many=True)
    next = serializers.CharField(allow_null=True)


class MessagePageOutput(serializers.Serializer):
    messages = MessageOutput(many=True)
    next = serializers.CharField(allow_null=True)


class MessagePageInput(serializers.Serializer):
    limit = QueryIntegerField(min_value=1, max_value=500, required=False, default=50)
    cursor = cursor_field(r"[0-9]{1,12}")


class AgentInput(serializers.Serializer):
    """``config`` as the framework takes it: the document gives each framework's (see
    ``Framework.config_schema`` and ``agents_app.api.schema``)."""

    name = name_field()
    framework = StrictCharField(max_length=63, trim_whitespace=False)
    config = serializers.DictField(required=False, default=dict)


class AgentUpdateInput(serializers.Serializer):
    """``PATCH /agents/<name>``: a new ``framework`` and/or a new ``config``, which replaces the
    whole config (without one, the agent's config must suit the new framework). Checked whole, as
    when the agent was made."""

    framework = StrictCharField(max_length=63, trim_whitespace=False, required=False)
    config = serializers.DictField(required=False)


class AgentOutput(serializers.ModelSerializer):
    class Meta:
        model = Agent
        fields = ["name", "framework", "config", "created_at", "updated_at"]


class SecretInput(serializers.Serializer):
    name = name_field(help_text='What an agent config names as `{"secret": NAME}`.')
    value = StrictCharField(
        max_length=SECRET_VALUE_MAX_BYTES,
        trim_whitespace=False,
        write_only=True,
        validators=[no_nul_validator],
        help_text=f"Stored encrypted, as given; never returned. At most {SECRET_VALUE_MAX_BYTES} bytes of UTF-8"
        " (`maxLength` counts characters, which take 1 to 4 bytes each).",
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


class ErrorOutput(serializers.Serializer):
    """Every error of the API: ``code`` says which (``invalid``, ``not_authenticated``,
    ``not_found``, ``session_busy``, ``too_large``, ``throttled``, ``agent_failed``,
    ``store_unavailable``...), ``detail`` says it to a person."""

    code = serializers.CharField()
    detail = serializers.CharField()

    # Declared like the others: DRF's metaclass takes it out of the class, so it does not shadow
    # the serializer's own ``fields``.
    fields = serializers.DictField(
        child=serializers.JSONField(), required=False, help_text="400: each bad field with its messages."
    )
    limit = serializers.CharField(
        required=False, help_text="403, 429 `limit_reached`: which of the tenant's limits is reached."
    )
    resets_at = serializers.DateTimeField(
        required=False, help_text="429 `budget_exceeded`: when the window of the budget used up resets (UTC)."
    )
    run_id = serializers.CharField(
        required=False,
        help_text="The run the error is about, when one was made (502, 504, 409; 409 `run_paused`: the"
        " session's paused run).",
    )
    agents = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="409 `in_use`: the agents that use it."
    )


class StreamEventOutput(serializers.Serializer):
    """One Server-Sent Event of a streamed run (``text/event-stream``)."""

    id = serializers.RegexField(
        validator_regex("[0-9]+"), help_text="Its number in the run; `Last-Event-ID` resumes after it."
    )
    event = serializers.ChoiceField(choices=["run", "delta", "done", "error", "cancelled", "paused"])
    data = serializers.CharField(
        help_text="JSON. run: `{run_id, session_id}`; delta: `{text}`; done: `{run_id, session_id, result}`;"
        " error and cancelled: `{code, detail}`; paused: the run's `pause` (the stream ends there: resume"
        " the run to go on)."
    )


def validated(serializer_class: type[serializers.Serializer], data: object) -> dict[str, Any]:
    """``data`` checked by ``serializer_class``: its validated data, or a ``ValidationError`` (400)."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
