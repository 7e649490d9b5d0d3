"""Too many failed authentications from one address: 429 with Retry-After, API and admin alike."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

LIMIT = 3


@pytest.fixture(autouse=True)
def _low_limit(settings) -> None:
    settings.AK_API = {**settings.AK_API, "AUTH_FAILURE_LIMIT": LIMIT, "AUTH_FAILURE_WINDOW": 600}


def test_bad_api_keys_lock_their_address_out_even_for_a_good_key(alice) -> None:
    guesser = {"REMOTE_ADDR": "203.0.113.7"}
    for _ in range(LIMIT):
        response = APIClient().get("/agents", HTTP_AUTHORIZATION="Bearer ak_wrong", **guesser)
        assert response.status_code == 401
    locked = alice.client.get("/agents", **guesser)  # alice's own, valid key, from that address
    assert locked.status_code == 429 and locked.json()["code"] == "throttled"
    assert 0 < int(locked["Retry-After"]) <= 600
    assert alice.client.get("/agents", REMOTE_ADDR="203.0.113.8").status_code == 200  # another address


def test_a_valid_key_does_not_count(alice) -> None:
    for _ in range(LIMIT + 2):
        assert alice.client.get("/agents", REMOTE_ADDR="203.0.113.9").status_code == 200


def test_wrong_admin_passwords_lock_the_login_out(transactional_db) -> None:
    get_user_model().objects.create_superuser("root", password="right-password-1")
    browser = Client(REMOTE_ADDR="198.51.100.4")
    for _ in range(LIMIT):
        page = browser.post("/admin/login/", {"username": "root", "password": "wrong"})
        assert page.status_code == 200  # the form again, with its error
    locked = browser.post("/admin/login/", {"username": "root", "password": "right-password-1"})
    assert locked.status_code == 429 and int(locked["Retry-After"]) > 0
    other = Client(REMOTE_ADDR="198.51.100.5").post(
        "/admin/login/", {"username": "root", "password": "right-password-1"}
    )
    assert other.status_code == 302  # logged in
