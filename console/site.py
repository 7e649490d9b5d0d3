"""The console's AdminSite: the admin with a home page of counts, scoped to the tenant."""

from __future__ import annotations

import unicodedata
from datetime import timedelta
from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from agents_app.models import Run
from infra.lockout import lockout_failed, lockout_wait
from sessions_app.admin_scoping import Scope, request_scope
from sessions_app.models import Session

RECENT_ERRORS = 10
PAUSED_SHOWN = 20


def console_overview(*, scope: Scope) -> dict[str, Any]:
    """The home page's figures for ``scope``, in four queries whatever the number of rows: the
    runs that wait for a person (oldest first, how many in all) among them."""
    now = timezone.now()
    since = now - timedelta(hours=24)
    by_status = dict.fromkeys(Run.Status.values, 0)
    for row in (
        Run.objects.filter(scope.q("tenant"), created_at__gte=since).order_by().values("status").annotate(n=Count("pk"))
    ):
        by_status[row["status"]] = row["n"]
    sessions = Session.objects.filter(scope.q("tenant")).aggregate(
        active=Count("pk", filter=Q(last_activity_at__gte=since)),
        live=Count("pk", filter=Q(expires_at__isnull=True) | Q(expires_at__gt=now)),
    )
    errors = list(
        Run.objects.filter(scope.q("tenant"), status=Run.Status.FAILED)
        .select_related("tenant", "agent", "session")
        .order_by("-created_at")[:RECENT_ERRORS]
    )
    paused = Run.objects.filter(scope.q("tenant"), status=Run.Status.PAUSED)
    waiting = list(paused.select_related("tenant", "agent", "session").order_by("paused_at")[:PAUSED_SHOWN])
    return {
        "paused_runs": waiting,
        "paused_total": paused.count() if len(waiting) == PAUSED_SHOWN else len(waiting),
        "since": since,
        "runs_by_status": list(by_status.items()),
        "runs_total": sum(by_status.values()),
        "active_sessions": sessions["active"],
        "live_sessions": sessions["live"],
        "recent_errors": errors,
    }


class ConsoleAdminSite(admin.AdminSite):
    site_header = "AK Platform console"
    site_title = "AK Platform console"
    index_title = "Operations"
    index_template = "admin/console/index.html"

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        context = super().each_context(request)
        if getattr(request, "user", None) is not None and request.user.is_authenticated:
            scope = request_scope(request)
            context["console_tenant"] = scope.tenant
            context["console_everything"] = scope.everything
        return context

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """The admin's login, refused (429) to a username with too many failed logins from this
        address, before its password is looked at: see ``infra.lockout``. Failures are
        counted by ``login_failed``."""
        wait = None
        if request.method == "POST":
            wait = lockout_wait(request, username=_login_username(request.POST))
        if wait is not None:
            response = HttpResponse("Too many failed logins for this user; try again later.", status=429)
            response["Retry-After"] = str(wait)
            return response
        return super().login(request, extra_context)

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        overview = console_overview(scope=request_scope(request))
        return super().index(request, {**overview, **(extra_context or {})})


def login_failed(
    sender: object, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    """``user_login_failed``: a wrong password counts against its username from the address it
    came from."""
    if request is not None:
        lockout_failed(request, username=_login_username(credentials))


def _login_username(data: Any) -> str:
    """The username a login form (or the credentials it was checked with) names, as the form
    cleans it (stripped, NFKC: ``UsernameField``), so that every spelling counts as one."""
    value = data.get(get_user_model().USERNAME_FIELD)
    return unicodedata.normalize("NFKC", value.strip()) if isinstance(value, str) else ""
