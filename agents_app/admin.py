"""The console's admin for agents (configs validated per framework), runs (watch, cancel, retry)
and secrets (values written, never shown)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.views.decorators.debug import sensitive_post_parameters

from agents_app.budgets import admin as _budgets_admin  # noqa: F401 - registers the budgets' page
from agents_app.errors import AgentInvalid, BrokerUnavailable, RunNotPaused
from agents_app.frameworks import framework_names
from agents_app.models import Agent, Run, Secret
from agents_app.references import agent_config_validated, agents_handing_off_to, agents_using_secret
from agents_app.runs.resume import ResumeRequest, run_resume_record
from agents_app.schedules import admin as _schedules_admin  # noqa: F401 - registers the schedules' page
from agents_app.secrets import SECRET_VALUE_MAX_BYTES, secret_encrypt, secret_value_check
from agents_app.services import BUILTIN_AGENTS, agent_delete, run_cancel, run_retry
from agents_app.usage.prices import currency, prices_for, tokens_cost, usage_tokens
from sessions_app.admin_scoping import TenantRelatedFilter, TenantScopedAdmin


class AgentForm(forms.ModelForm):
    """A bad config is a form error here, not a failed run later."""

    framework = forms.ChoiceField(choices=lambda: [(name, name) for name in framework_names()])

    class Meta:
        model = Agent
        fields = ["tenant", "name", "framework", "config"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        framework, config = cleaned.get("framework"), cleaned.get("config")
        if framework is None or "config" in self.errors:
            return cleaned
        tenant = cleaned.get("tenant") or getattr(self, "console_tenant", None)
        if tenant is None:  # a tenant is required: its own error says so
            return cleaned
        name = cleaned.get("name") or self.instance.name
        # The constraint is on the live agents only (a deleted one's name is free), a condition on a
        # field no form has: Django's model validation leaves it to the database. Checked here.
        if Agent.objects.filter(tenant=tenant, name=name).exclude(pk=self.instance.pk).exists():
            self.add_error("name", f"The tenant has an agent named {name!r}.")
        try:  # checked whole, as the API checks it: every bad field, the secrets and handoffs it names
            cleaned["config"] = agent_config_validated(
                tenant=tenant, name=name, framework=framework, config={} if config is None else config
            )
        except AgentInvalid as exc:
            for field, errors in exc.fields.items():
                target = "framework" if field == "framework" else "config"
                for error in errors:
                    self.add_error(target, f"{field.removeprefix('config.')}: {error}" if "." in field else error)
        return cleaned


@admin.register(Agent)
class AgentAdmin(TenantScopedAdmin):
    """Deleting an agent here is the API's ``DELETE /agents/<name>``: its runs stay, and one that
    is built in or that other agents hand off to is shown as protected, not deleted."""

    form = AgentForm
    list_display = ["name", "tenant", "framework", "updated_at"]
    list_filter = [("tenant", TenantRelatedFilter), "framework"]
    list_select_related = ["tenant"]
    search_fields = ["name"]

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple[list, dict, set, list]:
        protected = []
        for agent in objs:
            if agent.name in BUILTIN_AGENTS:
                protected.append(f"{agent} ({agent.tenant}): built in, every tenant has it")
            elif handing_off := agents_handing_off_to(tenant=agent.tenant, name=agent.name):
                protected.append(f"{agent} ({agent.tenant}): {', '.join(handing_off)} hand off to it")
        agents = [str(agent) for agent in objs]
        return agents, {Agent._meta.verbose_name_plural: len(agents)}, set(), protected

    def delete_model(self, request: HttpRequest, obj: Agent) -> None:
        agent_delete(agent=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Agent]) -> None:
        for agent in queryset:
            agent_delete(agent=agent)


@admin.register(Run)
class RunAdmin(TenantScopedAdmin):
    list_display = ["short_id", "tenant", "agent", "session_link", "status", "attempts", "duration", "tokens"]
    list_display += ["error_short", "waits_for", "created_at"]
    list_filter = ["status", ("agent", TenantRelatedFilter), ("tenant", TenantRelatedFilter), "created_at"]
    list_select_related = ["tenant", "agent", "session"]
    search_fields = ["session__session_id", "error", "worker"]
    actions = ["cancel", "retry", "approve", "deny"]
    list_per_page = 50
    exclude = ["usage"]  # shown readable (``usage_readable``), not as JSON

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # A run is a record: actions change it, not edits. Its usage is shown readable, not as JSON.
        return [f.name if f.name != "usage" else "usage_readable" for f in self.model._meta.fields]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list[tuple[str | None, dict[str, Any]]]:
        """What it was and how it ended, then its usage, then the rest (timings, webhook, process)."""
        first = ["id", "tenant", "session", "agent", "status", "message", "result", "error"]
        usage = ["model", "usage_readable"]
        rest = [name for name in self.get_readonly_fields(request, obj) if name not in first + usage]
        return [(None, {"fields": first}), ("Usage", {"fields": usage}), ("Timings and delivery", {"fields": rest})]

    @admin.display(description="tokens")
    def tokens(self, obj: Run) -> str:
        """prompt + completion, e.g. ``1,234 (1,000 + 234)``; "—" when the model reported none."""
        tokens = usage_tokens(obj.usage)
        if tokens is None:
            return "—"
        prompt, completion = tokens["prompt_tokens"], tokens["completion_tokens"]
        return f"{prompt + completion:,} ({prompt:,} + {completion:,})"

    @admin.display(description="usage")
    def usage_readable(self, obj: Run) -> str:
        """The tokens its model reported and what they cost at today's prices."""
        tokens = usage_tokens(obj.usage)
        if tokens is None:
            return "No tokens reported."
        cost = tokens_cost(
            prices_for([obj.model]).get(obj.model),
            prompt=tokens["prompt_tokens"],
            completion=tokens["completion_tokens"],
            cached=tokens["cached_tokens"],
        )
        rows = [
            ("prompt tokens", f"{tokens['prompt_tokens']:,}"),
            ("of which cached", f"{tokens['cached_tokens']:,}"),
            ("completion tokens", f"{tokens['completion_tokens']:,}"),
            ("total tokens", f"{tokens['prompt_tokens'] + tokens['completion_tokens']:,}"),
            ("cost", "no price for this model" if cost is None else f"{cost:,.6f} {currency()}"),
        ]
        return format_html(
            '<table id="run-usage">{}</table>',
            format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows),
        )

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

    @admin.display(description="waits for", ordering="paused_at")
    def waits_for(self, obj: Run) -> str:
        """A paused run's tool calls to approve, or its question."""
        if obj.status != Run.Status.PAUSED or not obj.pause:
            return ""
        if obj.pause.get("kind") == "approval":
            return ", ".join(f"{r['tool']}({r['arguments']})" for r in obj.pause.get("requests", []))[:200]
        return f"input: {obj.pause.get('prompt')}"[:200]

    @admin.action(description="Approve selected paused runs", permissions=["change"])
    def approve(self, request: HttpRequest, queryset: QuerySet) -> None:
        """Every tool call each one waits for is approved; a worker goes on with it."""
        self._decide(request, queryset, approve=True)

    @admin.action(description="Deny selected paused runs", permissions=["change"])
    def deny(self, request: HttpRequest, queryset: QuerySet) -> None:
        """Every tool call each one waits for is denied (the agent hears it); a worker goes on with it."""
        self._decide(request, queryset, approve=False)

    def _decide(self, request: HttpRequest, queryset: QuerySet, *, approve: bool) -> None:
        runs = list(queryset.filter(status=Run.Status.PAUSED).select_related("tenant"))
        done, skipped = 0, queryset.count() - len(runs)
        message = f"{'approved' if approve else 'denied'} by {request.user.get_username()} in the console"
        for run in runs:
            if (run.pause or {}).get("kind") != "approval":
                skipped += 1  # a question needs its answer: POST /runs/<id>/resume {"input": ...}
                continue
            decisions = [{"id": r["id"], "approve": approve, "message": message} for r in run.pause["requests"]]
            try:
                run_resume_record(ResumeRequest(str(run.pk), decisions=decisions, mode="queued"), tenant=run.tenant)
                done += 1
            except BrokerUnavailable as exc:
                self.message_user(request, f"The broker is unavailable: {exc}", messages.ERROR)
                return
            except RunNotPaused:  # resumed or cancelled meanwhile
                skipped += 1
        note = f"; {skipped} run(s) skipped (not paused, or waiting for an answer, not a decision)" if skipped else ""
        verb = "Approved" if approve else "Denied"
        self.message_user(request, f"{verb} {done} paused run(s); a worker goes on with each{note}.", messages.SUCCESS)

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


class SecretForm(forms.ModelForm):
    """The value is written here and never shown: not on the change page, not after an error."""

    value = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        strip=False,
        help_text=f"Stored encrypted; at most {SECRET_VALUE_MAX_BYTES} bytes. Leave empty to keep the current value.",
    )

    class Meta:
        model = Secret
        fields = ["tenant", "name"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is None:
            self.fields["value"].required = True
            self.fields["value"].help_text = f"Stored encrypted; at most {SECRET_VALUE_MAX_BYTES} bytes."

    def clean_value(self) -> str:
        value = self.cleaned_data["value"]
        if value:
            try:
                secret_value_check(value)
            except ValueError as exc:  # its message does not quote the value
                raise forms.ValidationError(str(exc)) from None
        return value


@admin.register(Secret)
class SecretAdmin(TenantScopedAdmin):
    form = SecretForm
    exclude = ["ciphertext"]
    readonly_fields = ["created_at", "updated_at"]
    list_display = ["name", "tenant", "created_at", "updated_at"]
    list_filter = [("tenant", TenantRelatedFilter)]
    list_select_related = ["tenant"]
    search_fields = ["name"]

    @method_decorator(sensitive_post_parameters("value"))
    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return super().changeform_view(request, *args, **kwargs)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple[list, dict, set, list]:
        """A secret that agents use is protected, as ``DELETE /secrets/<name>`` answers 409."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        for secret in objs:
            if users := agents_using_secret(tenant=secret.tenant, name=secret.name):
                protected.append(f"{secret} ({secret.tenant}): used by {', '.join(users)}")
        return deleted, counts, perms_needed, protected

    def save_model(self, request: HttpRequest, obj: Secret, form: forms.ModelForm, change: bool) -> None:
        if form.cleaned_data.get("value"):  # a new value rotates the secret; none keeps it
            obj.ciphertext = secret_encrypt(form.cleaned_data["value"])
        super().save_model(request, obj, form, change)
