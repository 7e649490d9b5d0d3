"""Input and output serializers of ``/schedules``: strict like the others (``serializers``), each
field's own rules here; what needs the tenant or the clock (an agent that exists, a cron that
parses, a time zone this machine knows, an ``at`` to come) is ``agents_app.schedules.services``'."""

from __future__ import annotations

from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agents_app.api.serializers import (
    MessageField,
    StrictBooleanField,
    StrictCharField,
    name_field,
    no_nul_validator,
    session_id_field,
    url_validator,
)
from agents_app.models import Schedule
from agents_app.outbound import refusal
from agents_app.patterns import anchored, validator_regex
from agents_app.schedules.timing import AT


@extend_schema_field(
    {
        "type": "string",
        "pattern": anchored(AT),
        "description": "An ISO 8601 time to come, e.g. `2026-12-24T18:00:00+01:00`; without an offset it is read in"
        " `timezone`.",
    }
)
class AtField(StrictCharField):
    def __init__(self, **kwargs: Any) -> None:
        at = RegexValidator(validator_regex(AT), "Use an ISO 8601 time such as '2026-12-24T18:00:00+01:00'.")
        super().__init__(trim_whitespace=False, validators=[at], **kwargs)


def _fields(*, creating: bool) -> dict[str, serializers.Field]:
    """The fields of a schedule's body; all optional for a ``PATCH``."""
    required = {} if creating else {"required": False}
    return {
        "agent": name_field(help_text="The name of one of the tenant's agents.", **required),
        "message": MessageField(help_text="What each firing sends the agent.", **required),
        "session_id": session_id_field(
            required=False, allow_null=True, help_text="The session every firing runs on; none: a new one each time."
        ),
        "cron": StrictCharField(
            required=False,
            max_length=255,
            trim_whitespace=False,
            validators=[no_nul_validator],
            help_text='Five fields (minute hour day-of-month month day-of-week), e.g. `"*/5 * * * *"`, or `@daily`'
            " and its kin; read in `timezone`. Exactly one of `cron` and `at`.",
        ),
        "timezone": StrictCharField(
            required=False,
            max_length=63,
            trim_whitespace=False,
            source="time_zone",
            help_text="The IANA time zone `cron` (and an `at` without an offset) is read in. Default `UTC`.",
        ),
        "at": AtField(required=False, help_text="One firing at this time. Exactly one of `cron` and `at`."),
        "webhook": StrictCharField(
            required=False,
            allow_null=True,
            max_length=2048,
            trim_whitespace=False,
            validators=[url_validator],
            source="webhook_url",
            help_text="POSTed each firing's run when it ends, as `POST /run`'s `webhook`.",
        ),
        "enabled": StrictBooleanField(required=False, help_text="A disabled schedule does not fire."),
    }


class _ScheduleFields(serializers.Serializer):
    creating = True

    def get_fields(self) -> dict[str, serializers.Field]:
        return _fields(creating=self.creating)

    def validate_webhook(self, url: str | None) -> str | None:
        why = refusal(url) if url else None
        if why is not None:
            raise serializers.ValidationError(f"Not a webhook the platform will call: {why}.")
        return url

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if "cron" in data and "at" in data:
            raise serializers.ValidationError({"at": ["Give one of `cron` and `at`, not both."]})
        return data


class ScheduleInput(_ScheduleFields):
    """``POST /schedules``: exactly one of ``cron`` and ``at`` (the document says so too:
    ``agents_app.api.schema.ScheduleInputScheme``)."""

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        data = super().validate(data)
        if "cron" not in data and "at" not in data:
            raise serializers.ValidationError({"cron": ["Give one of `cron` (a cron expression) and `at` (one time)."]})
        return data


class ScheduleUpdateInput(_ScheduleFields):
    """``PATCH /schedules/<id>``: any of the fields; a ``cron`` makes it a cron schedule, an ``at``
    a one-time one (not both)."""

    creating = False


class ScheduleOutput(serializers.ModelSerializer):
    schedule_id = serializers.CharField(source="id")
    agent = serializers.CharField(source="agent.name")
    session_id = serializers.SerializerMethodField(help_text="Null: a new session each firing.")
    cron = serializers.SerializerMethodField()
    timezone = serializers.CharField(source="time_zone")
    at = serializers.DateTimeField(allow_null=True, help_text="A one-time schedule's time; null for a cron one.")
    enabled = serializers.BooleanField()
    next_run_at = serializers.DateTimeField(
        allow_null=True, help_text="When it fires next; null when disabled, or once its `at` fired."
    )

    class Meta:
        model = Schedule
        fields = ["schedule_id", "agent", "message", "session_id", "cron", "timezone", "at", "next_run_at", "enabled"]

    @extend_schema_field({"type": "string", "nullable": True})
    def get_session_id(self, schedule: Schedule) -> str | None:
        return schedule.session_id or None

    @extend_schema_field({"type": "string", "nullable": True})
    def get_cron(self, schedule: Schedule) -> str | None:
        return schedule.cron or None
