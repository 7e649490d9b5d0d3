"""POST, GET and DELETE /secrets: values go in, are stored encrypted, and never come out."""

from __future__ import annotations

import json
import logging

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from agents_app.models import Secret
from agents_app.secrets import SecretMissing, SecretUnreadable, secret_decrypt
from agents_app.selectors import secret_value
from agents_app.services import secret_reencrypt_all, secret_set

VALUE = "sk-live-0123456789abcdefSECRET"
OLD_KEY = "old-key-" + "o" * 40
NEW_KEY = "new-key-" + "n" * 40


@pytest.fixture
def bob(make_tenant):
    return make_tenant()


def test_create_list_and_delete(alice) -> None:
    created = alice.post("/secrets", {"name": "openai", "value": VALUE})
    assert created.status_code == 201
    assert set(created.json()) == {"name", "created_at", "updated_at"}
    assert created.json()["name"] == "openai"
    alice.post("/secrets", {"name": "anthropic.key", "value": "another"})

    listed = alice.get("/secrets")
    assert listed.status_code == 200
    assert [s["name"] for s in listed.json()["secrets"]] == ["anthropic.key", "openai"]
    assert all(set(s) == {"name", "created_at", "updated_at"} for s in listed.json()["secrets"])

    assert alice.delete("/secrets/openai").status_code == 204
    assert [s["name"] for s in alice.get("/secrets").json()["secrets"]] == ["anthropic.key"]
    assert alice.delete("/secrets/openai").status_code == 404
    assert alice.delete("/secrets/never-was").status_code == 404


def test_posting_an_existing_name_rotates_it(alice) -> None:
    first = alice.post("/secrets", {"name": "openai", "value": VALUE}).json()
    before = Secret.objects.get(tenant=alice.tenant, name="openai").ciphertext
    rotated = alice.post("/secrets", {"name": "openai", "value": "sk-rotated"})
    assert rotated.status_code == 201  # CONTRACT: 201, set or rotated
    assert rotated.json()["created_at"] == first["created_at"]
    assert rotated.json()["updated_at"] > first["updated_at"]
    assert Secret.objects.filter(tenant=alice.tenant).count() == 1
    assert Secret.objects.get(tenant=alice.tenant, name="openai").ciphertext != before
    assert secret_value(tenant_id=alice.tenant.pk, name="openai") == "sk-rotated"


def test_the_value_is_stored_encrypted_and_decrypts_back(alice) -> None:
    alice.post("/secrets", {"name": "openai", "value": VALUE})
    ciphertext = Secret.objects.get(tenant=alice.tenant, name="openai").ciphertext
    assert VALUE not in ciphertext and "SECRET" not in ciphertext
    assert secret_decrypt(ciphertext) == VALUE
    assert secret_value(tenant_id=alice.tenant.pk, name="openai") == VALUE
    # The same value twice is two different tokens (Fernet's IV and timestamp).
    alice.post("/secrets", {"name": "openai", "value": VALUE})
    assert Secret.objects.get(tenant=alice.tenant, name="openai").ciphertext != ciphertext


def test_a_value_never_comes_back_nor_reaches_the_logs(alice, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        answers = [
            alice.post("/secrets", {"name": "openai", "value": VALUE}),
            alice.post("/secrets", {"name": "openai", "value": VALUE}),
            alice.get("/secrets"),
            alice.post("/secrets", {"name": "bad name!", "value": VALUE}),
            alice.post("/secrets", {"name": "openai", "value": VALUE * 300}),
            alice.delete("/secrets/openai"),
            alice.delete("/secrets/openai"),
        ]
    for answer in answers:
        assert VALUE not in answer.content.decode()
    assert VALUE not in caplog.text


def test_a_value_keeps_its_whitespace_and_unicode(alice) -> None:
    value = "  pässwörd with spaces \n"
    assert alice.post("/secrets", {"name": "spacey", "value": value}).status_code == 201
    assert secret_value(tenant_id=alice.tenant.pk, name="spacey") == value


def test_a_value_of_exactly_8_kb_is_taken(alice) -> None:
    assert alice.post("/secrets", {"name": "big", "value": "x" * 8192}).status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"value": VALUE}, "name"),
        ({"name": "", "value": VALUE}, "name"),
        ({"name": "   ", "value": VALUE}, "name"),
        ({"name": "bad name!", "value": VALUE}, "name"),
        ({"name": "-leading-dash", "value": VALUE}, "name"),
        ({"name": "slash/in", "value": VALUE}, "name"),
        ({"name": "x" * 64, "value": VALUE}, "name"),
        ({"name": 123, "value": VALUE}, "name"),
        ({"name": "openai"}, "value"),
        ({"name": "openai", "value": ""}, "value"),
        ({"name": "openai", "value": None}, "value"),
        ({"name": "openai", "value": 12345}, "value"),
        ({"name": "openai", "value": ["sk-1"]}, "value"),
        ({"name": "openai", "value": {"k": "v"}}, "value"),
        ({"name": "openai", "value": "x" * 8193}, "value"),
        ({"name": "openai", "value": "€" * 2731}, "value"),  # 2,731 characters, 8,193 bytes
        ({"name": "openai", "value": "nul\x00byte"}, "value"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(alice, body: dict, field: str) -> None:
    response = alice.post("/secrets", body)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert list(response.json()["fields"]) == [field]
    if isinstance(body.get("value"), str) and body["value"]:
        assert body["value"] not in response.content.decode()
    assert not Secret.objects.filter(tenant=alice.tenant).exists()


def test_a_body_that_is_not_an_object_is_a_400(alice) -> None:
    response = alice.client.post("/secrets", data=json.dumps(["openai", VALUE]), content_type="application/json")
    assert response.status_code == 400
    assert VALUE not in response.content.decode()


def test_without_a_key_it_is_a_401(alice) -> None:
    alice.post("/secrets", {"name": "openai", "value": VALUE})
    anonymous = APIClient()
    assert anonymous.get("/secrets").status_code == 401
    assert anonymous.post("/secrets", {"name": "x", "value": "y"}, format="json").status_code == 401
    assert anonymous.delete("/secrets/openai").status_code == 401
    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION="Bearer not-a-key")
    assert wrong.get("/secrets").status_code == 401
    assert Secret.objects.filter(tenant=alice.tenant, name="openai").exists()
    assert not Secret.objects.filter(name="x").exists()


def test_another_tenant_cannot_list_delete_or_overwrite(alice, bob) -> None:
    alice.post("/secrets", {"name": "openai", "value": VALUE})
    assert bob.get("/secrets").json() == {"secrets": []}
    assert bob.delete("/secrets/openai").status_code == 404
    assert secret_value(tenant_id=alice.tenant.pk, name="openai") == VALUE

    # The same name in another tenant is another secret: created (201), alice's untouched.
    assert bob.post("/secrets", {"name": "openai", "value": "bobs-own"}).status_code == 201
    assert Secret.objects.filter(name="openai").count() == 2
    assert secret_value(tenant_id=alice.tenant.pk, name="openai") == VALUE
    assert secret_value(tenant_id=bob.tenant.pk, name="openai") == "bobs-own"
    assert [s["name"] for s in alice.get("/secrets").json()["secrets"]] == ["openai"]

    assert bob.delete("/secrets/openai").status_code == 204
    assert secret_value(tenant_id=alice.tenant.pk, name="openai") == VALUE


def test_an_unknown_secret_is_missing_naming_it(alice, bob) -> None:
    secret_set(tenant=alice.tenant, name="openai", value=VALUE)
    with pytest.raises(SecretMissing, match="'openai'") as missing:
        secret_value(tenant_id=bob.tenant.pk, name="openai")
    assert VALUE not in str(missing.value)
    with pytest.raises(SecretMissing, match="'nope'"):
        secret_value(tenant_id=alice.tenant.pk, name="nope")


def test_the_service_refuses_bad_names_and_values_without_quoting_the_value(alice) -> None:
    with pytest.raises(ValueError, match="name"):
        secret_set(tenant=alice.tenant, name="bad name", value=VALUE)
    for bad in ["", None, 42, "x" * 8193]:
        with pytest.raises(ValueError) as refused:
            secret_set(tenant=alice.tenant, name="ok", value=bad)
        assert "x" * 100 not in str(refused.value)
    assert not Secret.objects.exists()


def test_old_keys_still_decrypt_after_a_key_rotation(alice) -> None:
    with override_settings(AK_SECRETS_KEY=OLD_KEY, AK_SECRETS_OLD_KEYS=[]):
        alice.post("/secrets", {"name": "openai", "value": VALUE})
        assert secret_value(tenant_id=alice.tenant.pk, name="openai") == VALUE

    with override_settings(AK_SECRETS_KEY=NEW_KEY, AK_SECRETS_OLD_KEYS=[]):
        with pytest.raises(SecretUnreadable, match="'openai'") as unreadable:
            secret_value(tenant_id=alice.tenant.pk, name="openai")
        assert isinstance(unreadable.value, SecretMissing) and VALUE not in str(unreadable.value)

    with override_settings(AK_SECRETS_KEY=NEW_KEY, AK_SECRETS_OLD_KEYS=[OLD_KEY]):
        assert secret_value(tenant_id=alice.tenant.pk, name="openai") == VALUE
        alice.post("/secrets", {"name": "fresh", "value": "made-with-the-new-key"})

    with override_settings(AK_SECRETS_KEY=NEW_KEY, AK_SECRETS_OLD_KEYS=[]):
        assert secret_value(tenant_id=alice.tenant.pk, name="fresh") == "made-with-the-new-key"


def test_reencrypting_all_lets_the_old_key_go(alice, bob) -> None:
    with override_settings(AK_SECRETS_KEY=OLD_KEY, AK_SECRETS_OLD_KEYS=[]):
        secret_set(tenant=alice.tenant, name="openai", value=VALUE)
        secret_set(tenant=bob.tenant, name="openai", value="bobs-own")
    updated_at = dict(Secret.objects.values_list("pk", "updated_at"))
    with override_settings(AK_SECRETS_KEY=NEW_KEY, AK_SECRETS_OLD_KEYS=[OLD_KEY]):
        assert secret_reencrypt_all() == 2
    assert dict(Secret.objects.values_list("pk", "updated_at")) == updated_at  # the values did not change
    with override_settings(AK_SECRETS_KEY=NEW_KEY, AK_SECRETS_OLD_KEYS=[]):
        assert secret_value(tenant_id=alice.tenant.pk, name="openai") == VALUE
        assert secret_value(tenant_id=bob.tenant.pk, name="openai") == "bobs-own"


def test_the_openapi_document_describes_the_secrets_endpoints(alice) -> None:
    document = APIClient().get("/api/schema/", {"format": "json"}).json()
    assert {"post", "get"} <= set(document["paths"]["/secrets"])
    assert "delete" in document["paths"]["/secrets/{name}"]
    schema = document["components"]["schemas"]["SecretInputRequest"]
    assert schema["properties"]["name"]["maxLength"] == 63 and "pattern" in schema["properties"]["name"]
    assert schema["properties"]["value"]["maxLength"] == 8192
    assert set(document["components"]["schemas"]["SecretOutput"]["properties"]) == {"name", "created_at", "updated_at"}
