"""Tenant staff see their tenant, everywhere in the admin; another tenant's objects are a 404."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model

from agents_app.models import Agent, Run
from sessions_app.models import ApiKey, EndUser, Thread
from sessions_app.services import api_key_issue
from tests.admin.conftest import failed_run

LISTS = {
    "thread": "/admin/sessions_app/thread/",
    "session": "/admin/sessions_app/session/",
    "enduser": "/admin/sessions_app/enduser/",
    "apikey": "/admin/sessions_app/apikey/",
    "agent": "/admin/agents_app/agent/",
    "run": "/admin/agents_app/run/",
}


@pytest.fixture
def two_tenants(tenant_a, tenant_b, converse):
    a = converse(tenant_a, user_id="alice-of-a", session_id="shared-id")
    b = converse(tenant_b, user_id="bob-of-b", session_id="shared-id")
    api_key_issue(tenant=tenant_a, name="key-of-a")
    api_key_issue(tenant=tenant_b, name="key-of-b")
    Agent.objects.create(tenant=tenant_b, name="b-secret-agent", framework="echo")
    failed_run(tenant_b, b, error="error-of-b")
    return a, b


@pytest.mark.parametrize("model", sorted(LISTS))
def test_lists_show_only_the_staff_tenant(staff_a, two_tenants, tenant_a, tenant_b, model: str) -> None:
    page = staff_a.get(LISTS[model])
    assert page.status_code == 200
    counts = page.context["cl"].result_count
    model_class = page.context["cl"].model
    assert counts == model_class.objects.filter(tenant=tenant_a).count() > 0
    assert all(obj.tenant_id == tenant_a.pk for obj in page.context["cl"].result_list)
    body = page.content.decode()
    assert "bob-of-b" not in body and "key-of-b" not in body and "error-of-b" not in body
    assert tenant_b.slug not in body


def test_superuser_sees_every_tenant(admin_client, two_tenants, tenant_a, tenant_b) -> None:
    page = admin_client.get(LISTS["thread"])
    tenants = {t.tenant_id for t in page.context["cl"].result_list}
    assert {tenant_a.pk, tenant_b.pk} <= tenants
    assert "tenant" in page.context["cl"].list_display


@pytest.mark.parametrize(
    "url",
    [
        lambda b: f"/admin/sessions_app/thread/{b.thread_id}/change/",
        lambda b: f"/admin/sessions_app/thread/{b.thread_id}/delete/",
        lambda b: f"/admin/sessions_app/thread/{b.thread_id}/history/",
        lambda b: f"/admin/sessions_app/thread/{b.thread_id}/export/",
        lambda b: f"/admin/sessions_app/thread/{b.thread_id}/clear/",
        lambda b: f"/admin/sessions_app/session/{b.pk}/change/",
        lambda b: f"/admin/sessions_app/enduser/{b.user_id}/change/",
        lambda b: f"/admin/sessions_app/enduser/{b.user_id}/forget/",
        lambda b: f"/admin/sessions_app/apikey/{ApiKey.objects.get(tenant=b.tenant).pk}/change/",
        lambda b: f"/admin/agents_app/agent/{Agent.objects.get(tenant=b.tenant, name='echo').pk}/change/",
        lambda b: f"/admin/agents_app/run/{Run.objects.filter(tenant=b.tenant).first().pk}/change/",
    ],
)
def test_another_tenants_object_is_a_404(staff_a, two_tenants, url) -> None:
    _, b = two_tenants
    assert staff_a.get(url(b)).status_code == 404
    # 403 where the operator may not change that kind of object at all (sessions), before any lookup.
    assert staff_a.post(url(b), {"confirm": "yes", "post": "yes"}).status_code in (403, 404)
    assert Thread.objects.filter(pk=b.thread_id).exists()


def test_actions_on_another_tenants_ids_touch_nothing(staff_a, two_tenants) -> None:
    _, b = two_tenants
    staff_a.post(LISTS["thread"], {"action": "archive", "_selected_action": [b.thread_id]})
    staff_a.post(LISTS["thread"], {"action": "delete_selected", "_selected_action": [b.thread_id], "post": "yes"})
    thread = Thread.objects.get(pk=b.thread_id)
    assert thread.status == Thread.Status.ACTIVE


def test_staff_without_a_tenant_sees_nothing(make_staff, two_tenants) -> None:
    nobody = make_staff(None)
    for url in LISTS.values():
        page = nobody.get(url)
        assert page.status_code == 403 or page.context["cl"].result_count == 0
    home = nobody.get("/admin/")
    assert "belongs to no tenant" in home.content.decode()


def test_tenants_and_staff_are_for_superusers_only(staff_a, tenant_b) -> None:
    assert staff_a.get("/admin/sessions_app/tenant/").status_code == 403
    assert staff_a.get(f"/admin/sessions_app/tenant/{tenant_b.pk}/change/").status_code == 403
    assert staff_a.get("/admin/sessions_app/tenantstaff/").status_code == 403


def test_filters_offer_only_the_tenants_choices(staff_a, two_tenants) -> None:
    body = staff_a.get(LISTS["run"]).content.decode()
    assert "b-secret-agent" not in body
    threads = staff_a.get(LISTS["thread"])
    agent_filter = next(f for f in threads.context["cl"].filter_specs if f.title == "agent")
    assert [name for _, name in agent_filter.lookup_choices] == ["echo"]
    assert "tenant" not in [getattr(f, "field_path", "") for f in threads.context["cl"].filter_specs]


def test_search_does_not_cross_tenants(staff_a, two_tenants) -> None:
    page = staff_a.get(LISTS["thread"], {"q": "bob-of-b"})
    assert page.context["cl"].result_count == 0
    page = staff_a.get(LISTS["thread"], {"q": "shared-id"})
    assert page.context["cl"].result_count == 1


def test_autocomplete_offers_only_the_tenants_users(staff_a, two_tenants) -> None:
    answer = staff_a.get(
        "/admin/autocomplete/",
        {"app_label": "sessions_app", "model_name": "thread", "field_name": "user", "term": "o"},
    )
    assert answer.status_code == 200
    names = [row["text"] for row in json.loads(answer.content)["results"]]
    assert names == ["alice-of-a"]


def test_foreign_key_choices_and_posts_stay_in_the_tenant(staff_a, two_tenants, tenant_a, tenant_b) -> None:
    a, _ = two_tenants
    url = f"/admin/sessions_app/thread/{a.thread_id}/change/"
    form = staff_a.get(url).context["adminform"].form
    assert list(form.fields["user"].queryset) == list(EndUser.objects.filter(tenant=tenant_a))
    assert form.fields["tenant"].widget.is_hidden
    other_user = EndUser.objects.get(tenant=tenant_b)
    answer = staff_a.post(
        url,
        {"tenant": tenant_b.pk, "user": other_user.pk, "title": "t", "metadata": "{}", "status": "active"},
    )
    assert answer.status_code == 200  # the form again, with an error
    assert "user" in answer.context["adminform"].form.errors
    assert Thread.objects.get(pk=a.thread_id).user.external_id == "alice-of-a"


def test_staff_saves_land_in_their_tenant_whatever_is_posted(staff_a, tenant_a, tenant_b) -> None:
    answer = staff_a.post(
        "/admin/agents_app/agent/add/",
        {"tenant": tenant_b.pk, "name": "planner", "framework": "echo", "config": "{}"},
    )
    assert answer.status_code == 302, answer.content
    agent = Agent.objects.get(name="planner")
    assert agent.tenant == tenant_a


def test_unique_names_are_checked_within_the_staff_tenant(staff_a, tenant_a) -> None:
    answer = staff_a.post("/admin/agents_app/agent/add/", {"name": "echo", "framework": "echo", "config": "{}"})
    assert answer.status_code == 200
    assert answer.context["adminform"].form.errors
    assert Agent.objects.filter(tenant=tenant_a, name="echo").count() == 1


def test_superuser_cannot_point_a_thread_at_another_tenants_user(admin_client, two_tenants, tenant_a, tenant_b):
    a, _ = two_tenants
    other_user = EndUser.objects.get(tenant=tenant_b)
    answer = admin_client.post(
        f"/admin/sessions_app/thread/{a.thread_id}/change/",
        {"tenant": tenant_a.pk, "user": other_user.pk, "title": "", "metadata": "{}", "status": "active"},
    )
    assert answer.status_code == 200
    assert "another tenant" in str(answer.context["adminform"].form.errors["user"])


def test_the_operator_group_gives_no_access_to_users(staff_a) -> None:
    assert staff_a.get("/admin/auth/user/").status_code == 403
    assert get_user_model().objects.get(pk=staff_a.user.pk).groups.get().name == "Tenant operators"
