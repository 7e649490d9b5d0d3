"""Failed authentications cost the client that failed (429 + Retry-After), never a correct
credential: a valid API key passes whatever its address did; the admin locks per (address, username)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

LIMIT = 20  # the default


@pytest.fixture(autouse=True)
def _window(settings) -> None:
    settings.AK_API = {**settings.AK_API, "AUTH_FAILURE_LIMIT": LIMIT, "AUTH_FAILURE_WINDOW": 600}


def test_fifty_bad_keys_do_not_lock_out_a_valid_key_from_that_address(alice) -> None:
    guesser = {"REMOTE_ADDR": "203.0.113.7"}
    answers = [
        APIClient().get("/agents", HTTP_AUTHORIZATION="Bearer ak_wrong", **guesser).status_code for _ in range(50)
    ]
    assert answers == [401] * LIMIT + [429] * (50 - LIMIT)  # the guesser pays for its failures
    assert alice.client.get("/agents", **guesser).status_code == 200  # alice's own, valid key, same address
    locked = APIClient().get("/agents", HTTP_AUTHORIZATION="Bearer ak_wrong", **guesser)
    assert locked.status_code == 429 and locked.json()["code"] == "throttled"
    assert 0 < int(locked["Retry-After"]) <= 600
    other = APIClient().get("/agents", HTTP_AUTHORIZATION="Bearer ak_wrong", REMOTE_ADDR="203.0.113.8")
    assert other.status_code == 401  # another address has its own count


def test_a_valid_key_does_not_count(alice) -> None:
    for _ in range(LIMIT + 2):
        assert alice.client.get("/agents", REMOTE_ADDR="203.0.113.9").status_code == 200
    bad = APIClient().get("/agents", HTTP_AUTHORIZATION="Bearer ak_wrong", REMOTE_ADDR="203.0.113.9")
    assert bad.status_code == 401


def _login(address: str, username: str, password: str) -> int:
    return Client(REMOTE_ADDR=address).post("/admin/login/", {"username": username, "password": password}).status_code


@pytest.fixture
def logins(transactional_db) -> None:
    users = get_user_model().objects
    users.create_superuser("root", password="right-password-1")
    users.create_user("olga", password="olga-password-1", is_staff=True)


def test_wrong_passwords_lock_that_user_from_that_address(logins, settings) -> None:
    settings.AK_API = {**settings.AK_API, "AUTH_FAILURE_LIMIT": 3}
    for _ in range(3):
        assert _login("198.51.100.4", "olga", "wrong") == 200  # the form again, with its error
    locked = Client(REMOTE_ADDR="198.51.100.4").post("/admin/login/", {"username": "olga", "password": "wrong"})
    assert locked.status_code == 429 and int(locked["Retry-After"]) > 0
    # while locked, the right password is refused alike: a guess tells nothing
    assert _login("198.51.100.4", "olga", "olga-password-1") == 429
    assert _login("198.51.100.4", " olga", "olga-password-1") == 429  # a spelling the form cleans alike
    assert _login("198.51.100.5", "olga", "olga-password-1") == 302  # from another address: logged in


def test_others_failures_do_not_lock_the_superuser_out(logins, settings) -> None:
    settings.AK_API = {**settings.AK_API, "AUTH_FAILURE_LIMIT": 3}
    for username in ("olga", "admin", "nobody"):  # failures for other users, from the superuser's address
        for _ in range(10):
            assert _login("198.51.100.4", username, "wrong") in (200, 429)
    assert _login("198.51.100.4", "olga", "olga-password-1") == 429  # olga is locked there
    assert _login("198.51.100.4", "root", "right-password-1") == 302  # root is not
    for _ in range(10):  # root's own name guessed from elsewhere
        _login("198.51.100.99", "root", "wrong")
    assert _login("198.51.100.4", "root", "right-password-1") == 302
