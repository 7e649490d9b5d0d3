"""Secrets in the console: a value is written through a form, stored encrypted, and never shown."""

from __future__ import annotations

import pytest

from agents_app.models import Agent, Secret
from agents_app.selectors import secret_value
from agents_app.services import secret_set

LIST = "/admin/agents_app/secret/"
ADD = "/admin/agents_app/secret/add/"
VALUE = "sk-admin-0123456789VALUE"


def change_url(secret: Secret) -> str:
    return f"/admin/agents_app/secret/{secret.pk}/change/"


def test_a_superuser_adds_a_secret_through_the_form(admin_client, tenant_a) -> None:
    form_page = admin_client.get(ADD)
    assert form_page.status_code == 200
    assert 'type="password"' in form_page.content.decode()
    answer = admin_client.post(ADD, {"tenant": tenant_a.pk, "name": "openai", "value": VALUE})
    assert answer.status_code == 302, answer.context["adminform"].form.errors if answer.context else answer
    secret = Secret.objects.get(tenant=tenant_a, name="openai")
    assert VALUE not in secret.ciphertext
    assert secret_value(tenant_id=tenant_a.pk, name="openai") == VALUE


def test_a_value_is_required_on_add(staff_a, tenant_a) -> None:
    answer = staff_a.post(ADD, {"name": "openai", "value": ""})
    assert answer.status_code == 200
    assert "value" in answer.context["adminform"].form.errors
    assert not Secret.objects.exists()


def test_the_change_page_shows_neither_value_nor_ciphertext(staff_a, tenant_a) -> None:
    secret = secret_set(tenant=tenant_a, name="openai", value=VALUE)
    page = staff_a.get(change_url(secret))
    assert page.status_code == 200
    body = page.content.decode()
    assert "openai" in body
    assert VALUE not in body and secret.ciphertext not in body
    assert "ciphertext" not in page.context["adminform"].form.fields
    # Nor does the list, nor the form shown again after an error.
    assert VALUE not in staff_a.get(LIST).content.decode()
    again = staff_a.post(change_url(secret), {"name": "bad name!", "value": VALUE})
    assert again.status_code == 200 and "name" in again.context["adminform"].form.errors
    assert VALUE not in again.content.decode()


def test_an_empty_value_on_change_keeps_it_and_a_new_one_rotates_it(staff_a, tenant_a) -> None:
    secret = secret_set(tenant=tenant_a, name="openai", value=VALUE)
    ciphertext = secret.ciphertext

    answer = staff_a.post(change_url(secret), {"name": "openai", "value": ""})
    assert answer.status_code == 302
    secret.refresh_from_db()
    assert secret.ciphertext == ciphertext
    assert secret_value(tenant_id=tenant_a.pk, name="openai") == VALUE

    answer = staff_a.post(change_url(secret), {"name": "openai", "value": "sk-rotated-in-the-console"})
    assert answer.status_code == 302
    secret.refresh_from_db()
    assert secret.ciphertext != ciphertext
    assert secret_value(tenant_id=tenant_a.pk, name="openai") == "sk-rotated-in-the-console"


def test_a_too_long_value_is_a_form_error(staff_a) -> None:
    answer = staff_a.post(ADD, {"name": "big", "value": "x" * 8193})
    assert answer.status_code == 200
    assert "8192 bytes" in str(answer.context["adminform"].form.errors["value"])
    assert not Secret.objects.exists()


def test_a_duplicate_name_in_the_tenant_is_a_form_error(staff_a, tenant_a) -> None:
    secret_set(tenant=tenant_a, name="openai", value=VALUE)
    answer = staff_a.post(ADD, {"name": "openai", "value": "other"})
    assert answer.status_code == 200
    assert answer.context["adminform"].form.errors
    assert secret_value(tenant_id=tenant_a.pk, name="openai") == VALUE


def test_tenant_staff_see_and_manage_only_their_tenants_secrets(staff_a, tenant_a, tenant_b) -> None:
    mine = secret_set(tenant=tenant_a, name="mine", value=VALUE)
    theirs = secret_set(tenant=tenant_b, name="theirs-of-b", value="b-value")

    page = staff_a.get(LIST)
    assert page.status_code == 200
    assert [s.pk for s in page.context["cl"].result_list] == [mine.pk]
    assert "tenant" not in page.context["cl"].list_display
    assert "theirs-of-b" not in page.content.decode()

    assert staff_a.get(change_url(theirs)).status_code == 404
    assert staff_a.post(change_url(theirs), {"name": "theirs-of-b", "value": "hijack"}).status_code == 404
    assert staff_a.get(f"/admin/agents_app/secret/{theirs.pk}/delete/").status_code == 404
    assert secret_value(tenant_id=tenant_b.pk, name="theirs-of-b") == "b-value"

    # What they add lands in their tenant, whatever tenant is posted; the same name may exist in another.
    answer = staff_a.post(ADD, {"tenant": tenant_b.pk, "name": "theirs-of-b", "value": "of-a"})
    assert answer.status_code == 302
    assert secret_value(tenant_id=tenant_a.pk, name="theirs-of-b") == "of-a"
    assert secret_value(tenant_id=tenant_b.pk, name="theirs-of-b") == "b-value"


def test_a_superuser_sees_every_tenant_with_its_column(admin_client, tenant_a, tenant_b) -> None:
    secret_set(tenant=tenant_a, name="a-key", value=VALUE)
    secret_set(tenant=tenant_b, name="b-key", value=VALUE)
    page = admin_client.get(LIST)
    assert {s.name for s in page.context["cl"].result_list} == {"a-key", "b-key"}
    assert page.context["cl"].list_display[1:] == ["name", "tenant", "created_at", "updated_at"]
    assert VALUE not in page.content.decode()


@pytest.mark.parametrize("how", ["page", "action"])
def test_delete_works(staff_a, tenant_a, how: str) -> None:
    secret = secret_set(tenant=tenant_a, name="openai", value=VALUE)
    if how == "page":
        answer = staff_a.post(f"/admin/agents_app/secret/{secret.pk}/delete/", {"post": "yes"})
    else:
        answer = staff_a.post(LIST, {"action": "delete_selected", "_selected_action": [secret.pk], "post": "yes"})
    assert answer.status_code == 302
    assert not Secret.objects.filter(pk=secret.pk).exists()


def test_a_secret_an_agent_uses_is_protected(staff_a, tenant_a) -> None:
    secret = secret_set(tenant=tenant_a, name="openai", value=VALUE)
    config = {"base_url": "https://api.example.com/v1", "model": "m", "api_key": {"secret": "openai"}}
    Agent.objects.create(tenant=tenant_a, name="gpt", framework="openai_chat", config=config)
    page = staff_a.get(f"/admin/agents_app/secret/{secret.pk}/delete/")
    assert "used by gpt" in " ".join(map(str, page.context["protected"]))
    staff_a.post(f"/admin/agents_app/secret/{secret.pk}/delete/", {"post": "yes"})
    staff_a.post(LIST, {"action": "delete_selected", "_selected_action": [secret.pk], "post": "yes"})
    assert Secret.objects.filter(pk=secret.pk).exists()
