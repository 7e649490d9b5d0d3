"""API keys (issued once, revoked, last use), agents (configs validated per framework), tenants."""

from __future__ import annotations

import re

from rest_framework.test import APIClient

from agents_app.models import Agent
from sessions_app.models import ApiKey, Tenant

KEYS = "/admin/sessions_app/apikey/"


def api(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def issue(client, name: str) -> str:
    """Issue a key through the admin; the raw key, read off the page that shows it once."""
    answer = client.post(f"{KEYS}add/", {"name": name})
    return re.search(r'<code id="raw-key"[^>]*>(ak_[^<]+)</code>', answer.content.decode()).group(1)


def test_issue_shows_the_key_once_and_it_works(staff_a, tenant_a) -> None:
    assert staff_a.get(f"{KEYS}add/").status_code == 200
    answer = staff_a.post(f"{KEYS}add/", {"name": "web"})
    assert answer.status_code == 200 and "no-store" in answer["Cache-Control"]
    raw = re.search(r'<code id="raw-key"[^>]*>(ak_[^<]+)</code>', answer.content.decode()).group(1)
    key = ApiKey.objects.get(name="web")
    assert key.tenant == tenant_a and key.key_hash == ApiKey.hash(raw)
    assert api(raw).get("/agents").status_code == 200
    assert raw not in staff_a.get(f"{KEYS}{key.pk}/change/").content.decode()
    assert raw not in staff_a.get(KEYS).content.decode()
    key.refresh_from_db()
    assert key.last_used_at is not None
    assert "field-last_used_at" in staff_a.get(KEYS).content.decode()


def test_superuser_issues_for_any_tenant(admin_client, tenant_b) -> None:
    admin_client.post(f"{KEYS}add/", {"name": "ops", "tenant": tenant_b.pk})
    assert ApiKey.objects.get(name="ops").tenant == tenant_b


def test_staff_cannot_issue_for_another_tenant(staff_a, tenant_a, tenant_b) -> None:
    staff_a.post(f"{KEYS}add/", {"name": "sneaky", "tenant": tenant_b.pk})
    assert ApiKey.objects.get(name="sneaky").tenant == tenant_a


def test_revoke_action_shuts_the_key_out(staff_a, tenant_a) -> None:
    old_raw, new_raw = issue(staff_a, "old"), issue(staff_a, "new")
    key = ApiKey.objects.get(name="old")
    assert api(old_raw).get("/agents").status_code == 200
    staff_a.post(KEYS, {"action": "revoke", "_selected_action": [key.pk]})
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert api(old_raw).get("/agents").status_code == 401
    assert api(new_raw).get("/agents").status_code == 200
    assert ApiKey.objects.get(name="new").revoked_at is None


def test_a_bad_agent_config_is_a_form_error(staff_a, tenant_a) -> None:
    answer = staff_a.post(
        "/admin/agents_app/agent/add/", {"name": "slow", "framework": "echo", "config": '{"delay_s": 500}'}
    )
    assert answer.status_code == 200
    assert "delay_s: must be a number from 0 to 60" in str(answer.context["adminform"].form.errors["config"])
    assert not Agent.objects.filter(name="slow").exists()
    answer = staff_a.post(
        "/admin/agents_app/agent/add/", {"name": "slow", "framework": "echo", "config": '{"temperature": 1}'}
    )
    assert "temperature: unknown option" in str(answer.context["adminform"].form.errors["config"])


def test_an_agent_config_is_checked_whole_as_the_api_checks_it(staff_a, tenant_a) -> None:
    config = '{"base_url": "ftp://x", "model": 3, "api_key": {"secret": "provider"}}'
    answer = staff_a.post("/admin/agents_app/agent/add/", {"name": "gpt", "framework": "openai_chat", "config": config})
    errors = str(answer.context["adminform"].form.errors["config"])
    assert "base_url: must be an http or https URL" in errors and "model: must be a model name" in errors
    config = '{"base_url": "https://api.example.com/v1", "model": "m", "api_key": {"secret": "provider"}}'
    answer = staff_a.post("/admin/agents_app/agent/add/", {"name": "gpt", "framework": "openai_chat", "config": config})
    assert "api_key: the tenant has no secret named 'provider'" in answer.context["adminform"].form.errors["config"][0]
    assert not Agent.objects.filter(name="gpt").exists()


def test_a_good_agent_config_is_saved_and_edited(staff_a, tenant_a) -> None:
    staff_a.post("/admin/agents_app/agent/add/", {"name": "slow", "framework": "echo", "config": '{"delay_s": 2}'})
    agent = Agent.objects.get(tenant=tenant_a, name="slow")
    assert agent.config == {"delay_s": 2}
    url = f"/admin/agents_app/agent/{agent.pk}/change/"
    assert staff_a.post(url, {"name": "slow", "framework": "echo", "config": '{"delay_s": 61}'}).status_code == 200
    staff_a.post(url, {"name": "slow", "framework": "echo", "config": '{"delay_s": 0.5}'})
    agent.refresh_from_db()
    assert agent.config == {"delay_s": 0.5}


def test_a_tool_kept_for_another_tenant_is_a_form_error(staff_a, tenant_a, tenant_b, model_server, settings) -> None:
    tools = {"crm": "tests.agent_tools.add"}
    settings.AK_AGENTS = {**settings.AK_AGENTS, "TOOLS": tools, "TOOL_TENANTS": {"crm": frozenset({tenant_b.slug})}}
    config = f'{{"base_url": "{model_server.url}", "model": "m", "tools": ["crm"]}}'
    form = {"name": "crm-bot", "framework": "openai_agents", "config": config}
    answer = staff_a.post("/admin/agents_app/agent/add/", form)
    assert answer.context["adminform"].form.errors["config"] == [
        "tools[0]: unknown tool 'crm'; this deployment offers: none"
    ]
    settings.AK_AGENTS = {**settings.AK_AGENTS, "TOOL_TENANTS": {"crm": frozenset({tenant_a.slug})}}
    staff_a.post("/admin/agents_app/agent/add/", form)
    assert Agent.objects.get(tenant=tenant_a, name="crm-bot").config["tools"] == ["crm"]


def test_an_unknown_framework_is_refused(staff_a) -> None:
    answer = staff_a.post("/admin/agents_app/agent/add/", {"name": "x", "framework": "nope", "config": "{}"})
    assert "framework" in answer.context["adminform"].form.errors


def test_superuser_creates_a_tenant_and_sees_its_counts(admin_client, converse) -> None:
    answer = admin_client.post(
        "/admin/sessions_app/tenant/add/",
        {
            "slug": "acme",
            "name": "Acme",
            "webhook_secret": "s" * 64,
            "created_at_0": "2026-01-01",
            "created_at_1": "0:0",
        },
    )
    assert answer.status_code == 302, answer.context["adminform"].form.errors if answer.context else answer
    acme = Tenant.objects.get(slug="acme")
    assert Agent.objects.filter(tenant=acme, name="echo").exists()
    converse(acme, user_id="u1", turns=2)
    converse(acme, user_id="u2", turns=1)
    page = admin_client.get("/admin/sessions_app/tenant/", {"q": "acme"})
    [row] = page.context["cl"].result_list
    assert (row.n_users, row.n_sessions, row.n_agents, row.n_runs, row.n_keys) == (2, 2, 1, 3, 0)


def test_a_superuser_sees_and_rotates_a_tenants_webhook_secret(admin_client, tenant_a) -> None:
    before = tenant_a.webhook_secret
    page = admin_client.get(f"/admin/sessions_app/tenant/{tenant_a.pk}/change/")
    assert before in page.content.decode()
    admin_client.post(
        "/admin/sessions_app/tenant/", {"action": "rotate_webhook_secret", "_selected_action": [tenant_a.pk]}
    )
    tenant_a.refresh_from_db()
    assert tenant_a.webhook_secret != before and len(tenant_a.webhook_secret) == 64


def test_an_agent_deleted_here_keeps_its_runs_and_what_others_use_is_protected(staff_a, tenant_a, converse) -> None:
    model = {"base_url": "https://api.example.com/v1", "model": "m"}
    Agent.objects.create(tenant=tenant_a, name="billing", framework="openai_agents", config=model)
    handing_off = {**model, "handoffs": ["billing"]}
    Agent.objects.create(tenant=tenant_a, name="triage", framework="openai_agents", config=handing_off)
    Agent.objects.create(tenant=tenant_a, name="bot", framework="echo")
    session = converse(tenant_a, agent="bot", turns=1)
    agents = {agent.name: agent for agent in Agent.objects.filter(tenant=tenant_a)}
    for name in ("billing", "echo"):  # handed off to; built in
        url = f"/admin/agents_app/agent/{agents[name].pk}/delete/"
        assert staff_a.get(url).context["protected"]
        staff_a.post(url, {"post": "yes"})
        assert Agent.objects.filter(pk=agents[name].pk).exists()
    answer = staff_a.post(f"/admin/agents_app/agent/{agents['bot'].pk}/delete/", {"post": "yes"})
    assert answer.status_code == 302
    assert not Agent.objects.filter(pk=agents["bot"].pk).exists()
    assert [run.agent.name for run in session.runs.all()] == ["bot"]  # its runs stay
    selected = [agents["billing"].pk, agents["triage"].pk]  # together: refused whole, billing is protected
    staff_a.post("/admin/agents_app/agent/", {"action": "delete_selected", "_selected_action": selected, "post": "yes"})
    assert sorted(Agent.objects.filter(tenant=tenant_a).values_list("name", flat=True)) == ["billing", "echo", "triage"]
