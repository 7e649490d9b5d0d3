"""The console's home page (runs by status, active sessions, recent errors) and making tenant staff."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from agents_app.models import Run
from sessions_app.models import Session, TenantStaff
from tests.admin.conftest import failed_run


def test_home_counts_the_tenants_runs_sessions_and_errors(staff_a, tenant_a, tenant_b, converse) -> None:
    a = converse(tenant_a, turns=3)
    converse(tenant_a, turns=1)
    failed_run(tenant_a, a, error="LLM timed out")
    old = failed_run(tenant_a, a, error="an old failure")
    Run.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=2))
    Session.objects.filter(pk=a.pk).update(last_activity_at=timezone.now() - timedelta(days=3))
    b = converse(tenant_b, turns=5)
    failed_run(tenant_b, b, error="error of tenant b")

    page = staff_a.get("/admin/")
    context = page.context
    assert dict(context["runs_by_status"]) == {
        "queued": 0,
        "running": 0,
        "paused": 0,
        "succeeded": 4,
        "failed": 1,
        "cancelled": 0,
    }
    assert context["active_sessions"] == 1 and context["live_sessions"] == 2
    assert [r.error for r in context["recent_errors"]] == ["LLM timed out", "an old failure"]
    body = page.content.decode()
    assert "LLM timed out" in body and "error of tenant b" not in body
    assert f"Tenant {tenant_a.slug}" in body


def test_superuser_home_counts_every_tenant(admin_client, tenant_a, tenant_b, converse) -> None:
    converse(tenant_a, turns=1)
    converse(tenant_b, turns=2)
    context = admin_client.get("/admin/").context
    assert dict(context["runs_by_status"])["succeeded"] == 3
    assert "All tenants" in admin_client.get("/admin/").content.decode()


def test_add_tenant_staff_command_makes_a_login_that_sees_its_tenant(tenant_a, tenant_b, converse) -> None:
    converse(tenant_a, user_id="alice", turns=1)
    converse(tenant_b, user_id="bob", turns=1)
    out = StringIO()
    call_command("add_tenant_staff", "olga", tenant_a.slug, "--password", "s3cret-pass", stdout=out)
    assert f"olga is now staff of tenant {tenant_a.slug}" in out.getvalue()
    client = Client()
    assert client.login(username="olga", password="s3cret-pass")
    threads = client.get("/admin/sessions_app/thread/")
    assert [t.user.external_id for t in threads.context["cl"].result_list] == ["alice"]
    call_command("add_tenant_staff", "olga", tenant_b.slug, stdout=StringIO())
    assert TenantStaff.objects.get(user__username="olga").tenant == tenant_b


def test_add_tenant_staff_refuses_unknown_tenants_and_superusers(db, tenant_a) -> None:
    with pytest.raises(CommandError, match="no tenant"):
        call_command("add_tenant_staff", "x", "nope", stdout=StringIO())
    get_user_model().objects.create_superuser("root", "r@example.com", "pw")
    with pytest.raises(CommandError, match="superuser"):
        call_command("add_tenant_staff", "root", tenant_a.slug, stdout=StringIO())


def test_superuser_adds_staff_in_the_admin(admin_client, tenant_a) -> None:
    user = get_user_model().objects.create_user("pat", password="pw-123456")
    answer = admin_client.post("/admin/sessions_app/tenantstaff/add/", {"user": user.pk, "tenant": tenant_a.pk})
    assert answer.status_code == 302
    user.refresh_from_db()
    assert user.is_staff and user.groups.filter(name="Tenant operators").exists()
    client = Client()
    client.force_login(user)
    assert client.get("/admin/sessions_app/thread/").status_code == 200
