"""The console's admin for the index: tenants, their staff, API keys, end users and sessions.

Threads live in ``admin_threads``; every ModelAdmin here is tenant-scoped (``admin_scoping``).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.apps import apps
from django.contrib import admin, messages
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from sessions_app import admin_threads  # noqa: F401 - registers ThreadAdmin
from sessions_app.admin_scoping import TenantRelatedFilter, TenantScopedAdmin, request_scope
from sessions_app.models import ApiKey, EndUser, Session, Tenant, TenantStaff, new_webhook_secret
from sessions_app.services import (
    api_key_issue,
    api_key_revoke,
    end_user_forget,
    session_delete,
    tenant_delete,
    tenant_staff_add,
)
from sessions_app.stores.base import StoreError


class SuperuserOnlyMixin:
    """Only superusers see and change these (tenants and their staff)."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_active and request.user.is_superuser


def _count_of(model: Any, tenant_ref: str = "tenant") -> Coalesce:
    """A correlated count of ``model`` rows per tenant: one subquery, no join fan-out."""
    rows = model.objects.filter(**{tenant_ref: OuterRef("pk")}).order_by().values(tenant_ref)
    return Coalesce(Subquery(rows.annotate(n=Count("pk")).values("n")[:1], output_field=IntegerField()), 0)


@admin.register(Tenant)
class TenantAdmin(SuperuserOnlyMixin, TenantScopedAdmin):
    list_display = ["slug", "name", "users", "sessions", "agents", "runs", "api_keys", "created_at"]
    search_fields = ["slug", "name"]
    readonly_fields = ["webhook_secret", "created_at"]
    actions = ["rotate_webhook_secret"]
    fieldsets = [
        (None, {"fields": ["slug", "name", "webhook_secret", "created_at"]}),
        (
            "Limits",
            {
                "description": "This tenant's own limits. Empty: the deployment's default (AK_LIMITS__*);"
                " 0: unlimited. Stored objects over a limit are refused with 403, runs and event streams"
                " over theirs with 429.",
                "fields": [
                    "limit_agents",
                    "limit_secrets",
                    "limit_sessions",
                    "limit_concurrent_runs",
                    "limit_event_streams",
                ],
            },
        ),
    ]

    @admin.action(description="Rotate the webhook secret of selected tenants")
    def rotate_webhook_secret(self, request: HttpRequest, queryset: QuerySet) -> None:
        """A new secret signs the next webhooks; receivers must be given it."""
        for tenant in queryset:
            Tenant.objects.filter(pk=tenant.pk).update(webhook_secret=new_webhook_secret())
        self.message_user(request, f"Rotated the webhook secret of {queryset.count()} tenant(s).")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        Agent = apps.get_model("agents_app", "Agent")
        Run = apps.get_model("agents_app", "Run")
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_users=_count_of(EndUser),
                n_sessions=_count_of(Session),
                n_agents=_count_of(Agent),
                n_runs=_count_of(Run),
                n_keys=_count_of(ApiKey),
            )
        )

    @admin.display(description="users", ordering="n_users")
    def users(self, obj: Tenant) -> int:
        return obj.n_users

    @admin.display(description="sessions", ordering="n_sessions")
    def sessions(self, obj: Tenant) -> int:
        return obj.n_sessions

    @admin.display(description="agents", ordering="n_agents")
    def agents(self, obj: Tenant) -> int:
        return obj.n_agents

    @admin.display(description="runs", ordering="n_runs")
    def runs(self, obj: Tenant) -> int:
        return obj.n_runs

    @admin.display(description="API keys", ordering="n_keys")
    def api_keys(self, obj: Tenant) -> int:
        return obj.n_keys

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple[list, dict, set, list]:
        # Counts, not a list of every row a tenant owns (the confirmation page would be huge).
        tenants = [self.get_queryset(request).get(pk=t.pk) for t in objs]
        listed = [f"{t.slug}: {t.n_sessions} sessions (in the store too), {t.n_runs} runs" for t in tenants]
        return listed, {"tenants": len(tenants)}, set(), []

    def delete_model(self, request: HttpRequest, obj: Tenant) -> None:
        tenant_delete(tenant=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for tenant in queryset:
            tenant_delete(tenant=tenant)


@admin.register(TenantStaff)
class TenantStaffAdmin(SuperuserOnlyMixin, admin.ModelAdmin):
    list_display = ["user", "tenant", "created_at"]
    list_filter = [("tenant", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["user", "tenant"]
    search_fields = ["user__username", "tenant__slug"]
    readonly_fields = ["created_at"]

    def save_model(self, request: HttpRequest, obj: TenantStaff, form: Any, change: bool) -> None:
        # Through the service: it also makes the user staff and gives them the operators' permissions.
        saved = tenant_staff_add(user=obj.user, tenant=obj.tenant)
        obj.pk, obj.created_at = saved.pk, saved.created_at


class ApiKeyIssueForm(forms.Form):
    name = forms.CharField(max_length=100, required=False, help_text="What the key is for, e.g. 'production web'.")
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.all())


@admin.register(ApiKey)
class ApiKeyAdmin(TenantScopedAdmin):
    list_display = ["prefix", "tenant", "name", "active", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("tenant", TenantRelatedFilter), "revoked_at", "last_used_at"]
    list_select_related = ["tenant"]
    search_fields = ["prefix", "name"]
    fields = ["tenant", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["tenant", "prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    @admin.display(description="active", boolean=True, ordering="revoked_at")
    def active(self, obj: ApiKey) -> bool:
        return obj.is_active

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        return fields if request_scope(request).everything else [f for f in fields if f != "tenant"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = list(super().get_fields(request, obj))
        return fields if request_scope(request).everything else [f for f in fields if f != "tenant"]

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        """Issue a key: the raw key is on the page that answers the POST, and nowhere else, ever."""
        if not self.has_add_permission(request):
            raise Http404("not found")
        scope = request_scope(request)
        form = ApiKeyIssueForm(request.POST or None)
        form.fields["tenant"].queryset = scope.filter(Tenant.objects.all(), "pk")
        if not scope.everything:
            form.fields["tenant"].widget = forms.HiddenInput()
            form.fields["tenant"].disabled = True
            form.fields["tenant"].initial = scope.tenant.pk
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Issue an API key",
            "form": form,
        }
        if request.method == "POST" and form.is_valid():
            key, raw = api_key_issue(tenant=form.cleaned_data["tenant"], name=form.cleaned_data["name"])
            self.log_addition(request, key, [{"added": {}}])
            context.update(title="API key issued", key=key, raw_key=raw)
            response = TemplateResponse(request, "admin/sessions_app/apikey/issued.html", context)
            response["Cache-Control"] = "no-store"
            return response
        return TemplateResponse(request, "admin/sessions_app/apikey/issue.html", context)

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet) -> None:
        keys = list(queryset.filter(revoked_at__isnull=True))
        for key in keys:
            api_key_revoke(api_key=key)
            self.log_change(request, key, "Revoked.")
        self.message_user(request, f"Revoked {len(keys)} key(s).", messages.SUCCESS)


@admin.register(EndUser)
class EndUserAdmin(TenantScopedAdmin):
    list_display = ["external_id", "tenant", "threads", "created_at"]
    list_filter = [("tenant", TenantRelatedFilter)]
    list_select_related = ["tenant"]
    search_fields = ["external_id"]
    readonly_fields = ["created_at"]
    actions = ["forget"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(n_threads=Count("threads")).order_by("external_id")

    @admin.display(description="threads", ordering="n_threads")
    def threads(self, obj: EndUser) -> int:
        return obj.n_threads

    def get_urls(self) -> list:
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/forget/", wrap(self.forget_view), name="sessions_app_enduser_forget"),
            *super().get_urls(),
        ]

    def forget_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        users = self.get_queryset(request).filter(pk=object_id) if object_id.isdigit() else EndUser.objects.none()
        if not users.exists():
            raise Http404("not found")
        return self._forget(request, users, action_url=request.path)

    @admin.action(description="Forget selected users (threads, sessions, runs: everywhere)", permissions=["delete"])
    def forget(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._forget(request, queryset, action_url="")

    def _forget(self, request: HttpRequest, queryset: QuerySet, *, action_url: str) -> HttpResponse | None:
        """The confirmation page, then (on a POST with ``confirm``) ``end_user_forget`` for each."""
        if not self.has_delete_permission(request):
            raise Http404("not found")
        if request.method == "POST" and request.POST.get("confirm") == "yes":
            forgotten = 0
            for user in queryset.select_related("tenant"):
                try:
                    end_user_forget(user=user, actor=request.user)
                except StoreError as exc:
                    self.message_user(request, f"Stopped: the session store did not answer ({exc}).", messages.ERROR)
                    break
                forgotten += 1
            self.message_user(request, f"Forgot {forgotten} user(s) and all their conversations.", messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:sessions_app_enduser_changelist"))
        Run = apps.get_model("agents_app", "Run")
        users = list(
            queryset.select_related("tenant").annotate(
                n_sessions=Count("sessions", distinct=True),
                n_runs=Subquery(
                    Run.objects.filter(session__user=OuterRef("pk"))
                    .order_by()
                    .values("session__user")
                    .annotate(n=Count("pk"))
                    .values("n")[:1],
                    output_field=IntegerField(),
                ),
            )
        )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Forget these users?",
            "users": users,
            "action_url": action_url,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/sessions_app/enduser/forget_confirmation.html", context)


@admin.register(Session)
class SessionAdmin(TenantScopedAdmin):
    list_display = ["session_id", "thread_link", "tenant", "user", "message_count", "last_activity_at", "expires_at"]
    list_filter = [("tenant", TenantRelatedFilter), ("last_activity_at", admin.DateFieldListFilter)]
    list_select_related = ["tenant", "user", "thread"]
    search_fields = ["session_id", "user__external_id"]
    readonly_fields = ["tenant", "thread", "session_id", "user", "message_count", "created_at"]
    readonly_fields += ["last_activity_at", "expires_at"]

    @admin.display(description="thread", ordering="thread__title")
    def thread_link(self, obj: Session) -> Any:
        from django.utils.html import format_html

        url = reverse("admin:sessions_app_thread_change", args=[obj.thread_id])
        return format_html('<a href="{}">{}</a>', url, obj.thread)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # sessions are made by runs

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple[list, dict, set, list]:
        # ``session_delete`` owns the cascade (thread, runs): count it rather than list every run.
        Run = apps.get_model("agents_app", "Run")
        sessions = list(objs)
        n_runs = Run.objects.filter(session__in=[s.pk for s in sessions]).count()
        listed = [f"{s.session_id} (history and state, in the store too)" for s in sessions]
        return listed, {"sessions and their threads": len(sessions), "runs": n_runs}, set(), []

    def delete_model(self, request: HttpRequest, obj: Session) -> None:
        session_delete(session=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for session in queryset.select_related("tenant", "thread"):
            session_delete(session=session)
