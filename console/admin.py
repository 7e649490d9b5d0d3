"""The console's admin of tenants (with counts), their staff, end users (forget) and sessions
(deleted with their runs). Threads: ``threads``."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, IntegerField, Model, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from agents_app.models import Agent, Run
from console import prices, threads  # noqa: F401 - registers the price table's admin, ThreadAdmin
from console.staff import tenant_staff_add
from sessions_app.admin_scoping import SuperuserOnlyMixin, TenantRelatedFilter, TenantScopedAdmin
from sessions_app.models import ApiKey, EndUser, Session, Tenant, TenantStaff, new_webhook_secret
from sessions_app.services import end_user_forget, session_delete, tenant_delete
from sessions_app.stores.base import StoreError


def count_of(model: type[Model], ref: str) -> Subquery:
    """A correlated count of ``model`` rows whose ``ref`` is the outer row: one subquery, no join fan-out."""
    rows = model.objects.filter(**{ref: OuterRef("pk")}).order_by().values(ref)
    return Subquery(rows.annotate(n=Count("pk")).values("n")[:1], output_field=IntegerField())


def count_column(annotation: str, description: str) -> Any:
    """A list column that shows the count ``annotation`` of each row, sortable by it."""

    @admin.display(description=description, ordering=annotation)
    def column(self: admin.ModelAdmin, obj: Model) -> int:
        return getattr(obj, annotation)

    return column


#: The tenant list's counts: annotation -> the model counted.
TENANT_COUNTS = {"n_users": EndUser, "n_sessions": Session, "n_agents": Agent, "n_runs": Run, "n_keys": ApiKey}

LIMIT_FIELDS = ["limit_agents", "limit_secrets", "limit_sessions", "limit_schedules", "limit_concurrent_runs"]
LIMIT_FIELDS += ["limit_event_streams", "limit_runs_in_flight"]


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
                " over theirs with 429; queued runs over the runs in flight wait their turn.",
                "fields": LIMIT_FIELDS,
            },
        ),
    ]
    users = count_column("n_users", "users")
    sessions = count_column("n_sessions", "sessions")
    agents = count_column("n_agents", "agents")
    runs = count_column("n_runs", "runs")
    api_keys = count_column("n_keys", "API keys")

    @admin.action(description="Rotate the webhook secret of selected tenants")
    def rotate_webhook_secret(self, request: HttpRequest, queryset: QuerySet) -> None:
        """A new secret signs the next webhooks; receivers must be given it."""
        for tenant in queryset:
            Tenant.objects.filter(pk=tenant.pk).update(webhook_secret=new_webhook_secret())
        self.message_user(request, f"Rotated the webhook secret of {queryset.count()} tenant(s).")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        counts = {name: Coalesce(count_of(model, "tenant"), 0) for name, model in TENANT_COUNTS.items()}
        return super().get_queryset(request).annotate(**counts)

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


@admin.register(EndUser)
class EndUserAdmin(TenantScopedAdmin):
    list_display = ["external_id", "tenant", "threads", "created_at"]
    list_filter = [("tenant", TenantRelatedFilter)]
    list_select_related = ["tenant"]
    search_fields = ["external_id"]
    readonly_fields = ["created_at"]
    actions = ["forget"]
    threads = count_column("n_threads", "threads")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(n_threads=Count("threads")).order_by("external_id")

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
        counted = {"n_sessions": Count("sessions", distinct=True), "n_runs": count_of(Run, "session__user")}
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Forget these users?",
            "users": list(queryset.select_related("tenant").annotate(**counted)),
            "action_url": action_url,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/console/enduser/forget_confirmation.html", context)


@admin.register(Session)
class SessionAdmin(TenantScopedAdmin):
    list_display = ["session_id", "thread_link", "tenant", "user", "message_count", "last_activity_at", "expires_at"]
    list_filter = [("tenant", TenantRelatedFilter), ("last_activity_at", admin.DateFieldListFilter)]
    list_select_related = ["tenant", "user", "thread"]
    search_fields = ["session_id", "user__external_id"]
    readonly_fields = ["tenant", "thread", "session_id", "user", "message_count", "created_at"]
    readonly_fields += ["last_activity_at", "expires_at"]

    @admin.display(description="thread", ordering="thread__title")
    def thread_link(self, obj: Session) -> str:
        url = reverse("admin:sessions_app_thread_change", args=[obj.thread_id])
        return format_html('<a href="{}">{}</a>', url, obj.thread)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # sessions are made by runs

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple[list, dict, set, list]:
        # ``session_delete`` owns the cascade (thread, runs): count it rather than list every run.
        sessions = list(objs)
        n_runs = Run.objects.filter(session__in=[s.pk for s in sessions]).count()
        listed = [f"{s.session_id} (history and state, in the store too)" for s in sessions]
        return listed, {"sessions and their threads": len(sessions), "runs": n_runs}, set(), []

    def delete_model(self, request: HttpRequest, obj: Session) -> None:
        session_delete(session=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for session in queryset.select_related("tenant", "thread"):
            session_delete(session=session)
