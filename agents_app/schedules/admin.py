"""The console's page of schedules: tenant-scoped like the others, checked as the API checks them
(``schedule_apply``), and saved so that a change never undoes a firing's claim: only the fields
changed are written, ``next_run_at`` only when the timing changed."""

from __future__ import annotations

import copy
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone

from agents_app.models import Schedule
from agents_app.outbound import validate_webhook_url
from agents_app.schedules.services import FIELDS, ScheduleInvalid, schedule_apply
from agents_app.schedules.timing import time_zones
from sessions_app.admin_scoping import TenantRelatedFilter, TenantScopedAdmin

#: The API's names of the fields ``ScheduleInvalid`` names, as the form's.
_FORM_FIELD = {"timezone": "time_zone", "webhook": "webhook_url"}


class ScheduleForm(forms.ModelForm):
    time_zone = forms.ChoiceField(choices=lambda: [(name, name) for name in sorted(time_zones())], initial="UTC")
    webhook_url = forms.URLField(
        required=False,
        max_length=2048,
        assume_scheme="https",
        validators=[validate_webhook_url],
        help_text="POSTed each firing's run when it ends.",
    )

    class Meta:
        model = Schedule
        fields = ["tenant", "agent", "message", "session_id", "cron", "time_zone", "at", "webhook_url", "enabled"]
        help_texts = {"at": "In UTC. Exactly one of cron and at."}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        own = self.instance.tenant if self.instance.tenant_id else None
        tenant = cleaned.get("tenant") or getattr(self, "console_tenant", None) or own
        if tenant is None or self.errors:
            return cleaned
        creating = self.instance.pk is None
        names = FIELDS if creating else [name for name in FIELDS if name in self.changed_data]
        fields = {name: cleaned.get(name) for name in names}
        if "agent" in fields:
            fields["agent"] = fields["agent"].name if fields["agent"] is not None else ""
        scratch = copy.copy(self.instance)
        scratch.tenant = tenant
        try:
            schedule_apply(scratch, fields, now=timezone.now(), creating=creating)
        except ScheduleInvalid as exc:
            for field, errors in exc.fields.items():
                for error in errors:
                    self.add_error(_FORM_FIELD.get(field, field), error)
            return cleaned
        self.scheduled = scratch
        return cleaned


@admin.register(Schedule)
class ScheduleAdmin(TenantScopedAdmin):
    form = ScheduleForm
    list_display = ["agent", "tenant", "cron", "at", "time_zone", "enabled", "next_run_at", "last_fired_at"]
    list_display += ["last_error"]
    list_filter = [("tenant", TenantRelatedFilter), "enabled"]
    list_select_related = ["tenant", "agent"]
    search_fields = ["message", "session_id", "cron"]
    readonly_fields = ["next_run_at", "last_fired_at", "last_error", "created_at", "updated_at"]

    def save_model(self, request: HttpRequest, obj: Schedule, form: forms.ModelForm, change: bool) -> None:
        scheduled: Schedule = form.scheduled  # type: ignore[attr-defined]
        obj.cron, obj.at, obj.next_run_at = scheduled.cron, scheduled.at, scheduled.next_run_at
        obj.last_fired_at = scheduled.last_fired_at
        if not change:
            super().save_model(request, obj, form, change)  # a tenant's staff: the tenant set here
            return
        changed = set(form.changed_data) | {"updated_at"}
        if changed & {"cron", "at", "time_zone", "enabled"}:
            changed |= {"cron", "at", "next_run_at", "last_fired_at"}
        obj.save(update_fields=sorted(changed))
