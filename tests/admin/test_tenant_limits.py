"""A tenant's own limits, shown and changed on its admin page; the API applies them at once."""

from __future__ import annotations

from rest_framework.test import APIClient

from sessions_app.models import Tenant
from sessions_app.services import api_key_issue

LIMITS = ["limit_agents", "limit_secrets", "limit_sessions", "limit_schedules", "limit_concurrent_runs"]
LIMITS += ["limit_event_streams"]


def change(admin_client, tenant: Tenant, **limits: str):
    form = {"slug": tenant.slug, "name": tenant.name, **dict.fromkeys(LIMITS, ""), **limits}
    answer = admin_client.post(f"/admin/sessions_app/tenant/{tenant.pk}/change/", form)
    assert answer.status_code == 302, answer.context["adminform"].form.errors if answer.context else answer
    tenant.refresh_from_db()


def test_the_admin_overrides_a_tenants_limits_and_the_api_follows(admin_client, tenant_a, settings) -> None:
    settings.AK_LIMITS = {**settings.AK_LIMITS, "AGENTS": 5}
    page = admin_client.get(f"/admin/sessions_app/tenant/{tenant_a.pk}/change/").content.decode()
    assert "Limits" in page and all(f'name="{field}"' in page for field in LIMITS)
    assert "AK_LIMITS__AGENTS" in page  # the help says where the default comes from

    _, key = api_key_issue(tenant=tenant_a)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")

    def create_agent(name: str):
        return api.post("/agents", {"name": name, "framework": "echo", "config": {}}, format="json")

    assert create_agent("first").status_code == 201  # remembered with its key by this process
    change(admin_client, tenant_a, limit_agents="1")
    assert tenant_a.limit_agents == 1
    refused = create_agent("second")
    assert refused.status_code == 403
    assert refused.json()["code"] == "limit_reached" and refused.json()["limit"] == "agents"

    change(admin_client, tenant_a, limit_agents="")  # empty: the deployment's default again
    assert tenant_a.limit_agents is None
    assert create_agent("second").status_code == 201
    settings.AK_LIMITS = {**settings.AK_LIMITS, "AGENTS": 2}
    assert create_agent("third").status_code == 403
    change(admin_client, tenant_a, limit_agents="0")  # 0: unlimited
    assert create_agent("third").status_code == 201


def test_a_limit_is_a_number_of_zero_or_more(admin_client, tenant_a) -> None:
    form = {"slug": tenant_a.slug, "name": tenant_a.name, **dict.fromkeys(LIMITS, ""), "limit_sessions": "-1"}
    answer = admin_client.post(f"/admin/sessions_app/tenant/{tenant_a.pk}/change/", form)
    assert answer.status_code == 200 and "limit_sessions" in answer.context["adminform"].form.errors
