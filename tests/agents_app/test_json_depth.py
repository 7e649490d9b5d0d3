"""A request body nested deeper than MAX_JSON_DEPTH is a 400 naming its field, never a 500."""

from __future__ import annotations

import json

import pytest

from agents_app.api.parsers import MAX_JSON_DEPTH
from agents_app.models import Agent, Secret


def nested(levels: int, leaf: object = 1) -> object:
    """``levels`` containers, objects and lists in turn, around ``leaf``."""
    value = leaf
    for i in range(levels):
        value = {"a": value} if i % 2 else [value]
    return value


def text(levels: int) -> str:
    """As ``nested``, written out without Python's recursion (json.dumps would hit it too)."""
    return "[" * levels + "1" + "]" * levels


BODIES = {
    "/run": lambda deep: {"agent": "echo", "message": "x", "session_id": "deep-1", "user_id": deep},
    "/agents": lambda deep: {"name": "deep", "framework": "echo", "config": {"delay_s": 0, "x": deep}},
    "/secrets": lambda deep: {"name": "deep", "value": deep},
}
FIELDS = {"/run": "user_id", "/agents": "config", "/secrets": "value"}


@pytest.mark.parametrize("path", list(BODIES))
@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH, 400, 5000])
def test_deep_bodies_are_a_400_naming_the_field(alice, path: str, levels: int) -> None:
    marker = "DEEP"
    body = json.dumps(BODIES[path](marker)).replace(json.dumps(marker), text(levels))
    response = alice.client.post(path, body, content_type="application/json")
    assert response.status_code == 400, response.content
    error = response.json()
    assert error["code"] == "invalid"
    assert error["fields"] == {FIELDS[path]: [f"Nested deeper than {MAX_JSON_DEPTH} levels."]}
    assert not Agent.objects.filter(name="deep").exists() and not Secret.objects.filter(name="deep").exists()


def test_a_body_at_the_limit_is_parsed(alice) -> None:
    # the body is level 1, "config" level 2: "x" holds levels 3 to MAX_JSON_DEPTH
    deep = nested(MAX_JSON_DEPTH - 2)
    response = alice.post("/agents", {"name": "deep", "framework": "echo", "config": {"delay_s": 0, "x": deep}})
    assert response.status_code in (201, 400), response.content
    assert "Nested deeper" not in response.content.decode()  # whatever the config's own rules say


def test_a_deep_list_body_is_named_non_field_errors(alice) -> None:
    response = alice.client.post("/run", text(MAX_JSON_DEPTH + 1), content_type="application/json")
    assert response.status_code == 400
    assert "non_field_errors" in response.json()["fields"]
