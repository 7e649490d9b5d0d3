"""The console's admin for agents (configs validated per framework) and runs (watch, cancel, retry)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from agents_app.frameworks import ConfigError, UnknownFramework, framework_names, get_framework
from agents_app.models import Agent, Run
from agents_app.services import run_cancel, run_retry
from akplatform.exceptions import BrokerUnavailable
from sessions_app.admin_scoping import TenantRelatedFilter, TenantScopedAdmin


class AgentForm(forms.ModelForm):
    """A bad config is a form error here, not a failed run later."""

    framework = forms.ChoiceField(choices=())

    class Meta:
        model = Agent
        fields = ["tenant", "name", "framework", "config"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["framework"].choices = [(name, name) for name in framework_names()]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        framework, config = cleaned.get("framework"), cleaned.get("config")
        if framework is None or "config" in self.errors:
            return cleaned
        try:
            cleaned["config"] = get_framework(framework).validate_config({} if config is None else config)
        except UnknownFramework as exc:
            self.add_error("framework", str(exc))
        except ConfigError as exc:
            self.add_error("config", f"{exc.field}: {exc.message}")
        return cleaned


@admin.register(Agent)
class AgentAdmin(TenantScopedAdmin):
    form = AgentForm
    list_display = ["name", "tenant", "framework", "updated_at"]
    list_filter = [("tenant", TenantRelatedFilter), "framework"]
    list_select_related = ["tenant"]
    search_fields = ["name"]


@admin.register(Run)
class RunAdmin(TenantScopedAdmin):
    list_display = ["short_id", "tenant", "agent", "session_link", "status", "attempts", "duration", "error_short"]
    list_display += ["created_at"]
    list_filter = ["status", ("agent", TenantRelatedFilter), ("tenant", TenantRelatedFilter), "created_at"]
    list_select_related = ["tenant", "agent", "session"]
    search_fields = ["session__session_id", "error", "worker"]
    actions = ["cancel", "retry"]
    list_per_page = 50

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in self.model._meta.fields]  # a run is a record: actions change it, not edits

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # runs are made by the API, the CLI and the workers

    @admin.display(description="run", ordering="created_at")
    def short_id(self, obj: Run) -> str:
        return str(obj.id)[:8]

    @admin.display(description="session", ordering="session__session_id")
    def session_link(self, obj: Run) -> str:
        url = reverse("admin:sessions_app_thread_change", args=[obj.session.thread_id])
        return format_html('<a href="{}">{}</a>', url, obj.session.session_id[:24])

    @admin.display(description="duration")
    def duration(self, obj: Run) -> str:
        if obj.started_at is None or obj.finished_at is None:
            return "—"
        return f"{(obj.finished_at - obj.started_at).total_seconds():.2f} s"

    @admin.display(description="error", ordering="error")
    def error_short(self, obj: Run) -> str:
        return (obj.error or "")[:120]

    @admin.action(description="Cancel selected runs", permissions=["change"])
    def cancel(self, request: HttpRequest, queryset: QuerySet) -> None:
        """Queued runs never start; running ones stop at their next check; finished ones stay."""
        runs = list(queryset.exclude(status__in=Run.FINISHED).select_related("session__tenant"))
        for run in runs:
            run_cancel(run=run)
        self.message_user(request, f"Asked {len(runs)} unfinished run(s) to cancel.", messages.SUCCESS)

    @admin.action(description="Retry selected runs", permissions=["change"])
    def retry(self, request: HttpRequest, queryset: QuerySet) -> None:
        """A new queued run for each finished one (same agent, session and message)."""
        runs = list(queryset.filter(status__in=Run.FINISHED).select_related("tenant", "session", "agent"))
        try:
            for run in runs:
                run_retry(run=run)
        except BrokerUnavailable as exc:
            self.message_user(request, f"The broker is unavailable, nothing was queued: {exc}", messages.ERROR)
            return
        skipped = queryset.count() - len(runs)
        note = f"; {skipped} unfinished run(s) skipped" if skipped else ""
        self.message_user(request, f"Queued {len(runs)} new run(s){note}.", messages.SUCCESS)
