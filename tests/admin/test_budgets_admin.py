"""The console's budgets: superusers add and change them (checked: a cap given, an agent of the
tenant, a webhook the platform will call) and the API applies them at once; a tenant's staff see
their own tenant's only, and change nothing."""

from __future__ import annotations

from rest_framework.test import APIClient

from agents_app.models import Budget
from sessions_app.models import Tenant
from sessions_app.services import api_key_issue

ADD = "/admin/agents_app/budget/add/"


def form(tenant: Tenant, **fields: str) -> dict[str, str]:
    base = {"tenant": str(tenant.pk), "agent": "", "period": "day", "max_tokens": "", "max_spend": ""}
    inline = {"alerts-TOTAL_FORMS": "0", "alerts-INITIAL_FORMS": "0"}
    return {**base, "alert_webhook_url": "", **inline, **fields}


def errors(answer) -> dict:
    form = answer.context["adminform"].form
    return {name: " ".join(messages) for name, messages in {**form.errors, "__all__": form.non_field_errors()}.items()}


def test_a_superuser_adds_and_changes_a_budget_and_the_api_follows(admin_client, tenant_a) -> None:
    _, key = api_key_issue(tenant=tenant_a)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api.post("/run", {"agent": "echo", "message": "hi"}, format="json").status_code == 200

    answer = admin_client.post(ADD, form(tenant_a, max_spend="0"))  # a cap of 0: nothing may run
    assert answer.status_code == 302, errors(answer)
    budget = Budget.objects.get(tenant=tenant_a)
    assert (budget.agent, budget.period, budget.max_tokens, budget.max_spend) == ("", "day", None, 0)
    refused = api.post("/run", {"agent": "echo", "message": "hi"}, format="json")
    assert refused.status_code == 429 and refused.json()["code"] == "budget_exceeded"

    page = admin_client.get(f"/admin/agents_app/budget/{budget.pk}/change/").content.decode()
    assert "Used in the current window" in page and "0 tokens, 0.000000 USD" in page and "100.0 %" in page
    changed = form(tenant_a, period="month", max_tokens="1000", alert_webhook_url="https://example.com/hook")
    answer = admin_client.post(f"/admin/agents_app/budget/{budget.pk}/change/", changed)
    assert answer.status_code == 302, errors(answer)
    budget.refresh_from_db()
    assert (budget.period, budget.max_tokens, budget.max_spend) == ("month", 1000, None)
    assert budget.alert_webhook_url == "https://example.com/hook"
    assert api.post("/run", {"agent": "echo", "message": "hi"}, format="json").status_code == 200
    assert api.get("/limits").json()["budgets"][0]["max_tokens"] == 1000
    listing = admin_client.get("/admin/agents_app/budget/").content.decode()
    assert "(the whole tenant)" in listing and tenant_a.slug in listing


def test_a_budget_is_checked_before_it_is_saved(admin_client, tenant_a, tenant_b, settings) -> None:
    assert "Give a cap" in errors(admin_client.post(ADD, form(tenant_a)))["__all__"]
    assert "max_tokens" in errors(admin_client.post(ADD, form(tenant_a, max_tokens="-1")))
    unknown = errors(admin_client.post(ADD, form(tenant_a, agent="nobody", max_tokens="5")))
    assert "no agent named 'nobody'" in unknown["agent"]
    settings.AK_RUN = {**settings.AK_RUN, "WEBHOOK_ALLOW_PRIVATE": False}
    private = errors(admin_client.post(ADD, form(tenant_a, max_tokens="5", alert_webhook_url="http://127.0.0.1/h")))
    assert "alert_webhook_url" in private
    assert admin_client.post(ADD, form(tenant_a, agent="echo", max_tokens="5")).status_code == 302
    twice = errors(admin_client.post(ADD, form(tenant_a, agent="echo", max_tokens="9")))
    assert "already exists" in twice["__all__"]
    assert admin_client.post(ADD, form(tenant_b, agent="echo", max_tokens="5")).status_code == 302  # its own
    assert Budget.objects.count() == 2


def test_tenant_staff_see_their_tenants_budgets_only_and_change_nothing(staff_a, tenant_a, tenant_b) -> None:
    own = Budget.objects.create(tenant=tenant_a, period="day", max_tokens=10)
    other = Budget.objects.create(tenant=tenant_b, period="day", max_tokens=20)
    listing = staff_a.get("/admin/agents_app/budget/")
    assert listing.status_code == 200
    assert list(listing.context["cl"].result_list) == [own]
    assert staff_a.get(f"/admin/agents_app/budget/{own.pk}/change/").status_code == 200  # to read
    assert staff_a.get(f"/admin/agents_app/budget/{other.pk}/change/").status_code == 404
    assert staff_a.get(ADD).status_code == 403
    answer = staff_a.post(f"/admin/agents_app/budget/{own.pk}/change/", form(tenant_a, max_tokens="99999"))
    assert answer.status_code == 403
    assert staff_a.post(f"/admin/agents_app/budget/{own.pk}/delete/", {"post": "yes"}).status_code == 403
    own.refresh_from_db()
    assert own.max_tokens == 10
