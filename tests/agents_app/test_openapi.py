"""The OpenAPI document says what the API does: its errors, its fields' constraints. (The live
check of every operation against it is ``tests/live/test_schemathesis.py``; these are the bugs it
found, each pinned here.)"""

from __future__ import annotations

import re

import pytest
from rest_framework.test import APIClient

from agents_app import patterns
from agents_app.frameworks import framework_names

SID = "s-1"


@pytest.fixture
def document() -> dict:
    return APIClient().get("/api/schema/", {"format": "json"}).json()


def operations(document: dict):
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", operation


def test_every_error_is_documented_with_the_error_shape(document) -> None:
    error = {"$ref": "#/components/schemas/ErrorOutput"}
    for name, operation in operations(document):
        responses = operation["responses"]
        if name == "GET /health":
            assert set(responses) == {"200", "503"}
            continue
        assert {"401", "429"} <= set(responses), name
        if "{" in name:
            assert "404" in responses, name
        if "requestBody" in operation:
            assert {"400", "413", "415"} <= set(responses), name
        for code, response in responses.items():
            if code >= "400":
                assert response["content"]["application/json"]["schema"] == error, (name, code)
                assert response["description"], (name, code)
    run = dict(operations(document))["POST /run"]["responses"]
    assert {"404", "409", "502", "503", "504"} <= set(run)
    assert "text/event-stream" in run["200"]["content"]


def test_the_fields_constraints_are_in_the_document(document) -> None:
    schemas = document["components"]["schemas"]
    run = schemas["RunInputRequest"]["properties"]
    assert run["agent"]["minLength"] == 1 and run["agent"]["pattern"] == patterns.anchored(patterns.NAME)
    assert run["message"]["minLength"] == 1 and run["message"]["maxLength"] == 64 * 1024
    assert run["user_id"]["pattern"] == patterns.anchored(patterns.NOT_BLANK)
    assert "anyOf" in schemas["RunInputRequest"]  # webhook needs async; not stream and async
    agent = schemas["AgentInputRequest"]
    assert len(agent["oneOf"]) == len(framework_names())  # one config per framework
    messages = dict(operations(document))["GET /sessions/{session_id}/messages"]
    limit = next(p for p in messages["parameters"] if p["name"] == "limit")["schema"]
    assert (limit["minimum"], limit["maximum"]) == (1, 500)


def test_an_agent_is_read_changed_and_deleted_as_documented(document) -> None:
    ops = dict(operations(document))
    get, update, delete = (ops[f"{method} /agents/{{name}}"] for method in ("GET", "PATCH", "DELETE"))
    assert (get["operationId"], update["operationId"], delete["operationId"]) == (
        "agents_get",
        "agents_update",
        "agents_delete",
    )
    assert {"200", "404"} <= set(get["responses"])
    assert {"200", "400", "404", "409"} <= set(update["responses"])
    assert {"204", "404", "409"} <= set(delete["responses"])
    assert "409" in ops["DELETE /secrets/{name}"]["responses"]
    error = document["components"]["schemas"]["ErrorOutput"]["properties"]
    assert error["agents"]["type"] == "array"  # 409 in_use names the agents
    patch = document["components"]["schemas"]["PatchedAgentUpdateInputRequest"]
    assert len(patch["oneOf"]) == len(framework_names()) + 1  # one config per framework, and any object without one
    for created in (ops["POST /agents"]["responses"]["201"], ops["GET /agents"]["responses"]["200"]):
        assert {"GetAgent", "UpdateAgent", "DeleteAgent"} <= set(created["links"])


@pytest.mark.parametrize(
    ("body", "pattern", "valid"),
    [
        ("x", patterns.NOT_BLANK, True),
        (" \u3000\t", patterns.NOT_BLANK, False),
        ("\x1c", patterns.NOT_BLANK, False),  # a space to str.strip, not to ECMA's \s
        ("a\x00", patterns.NOT_BLANK, False),
        ("echo\n", patterns.NAME, False),  # Python's $ would let it through
        ("http://[::1]:8000/v1", patterns.URL, True),
        ("http://[:::1]/", patterns.URL, False),
        ("https://api.example.com:65536/", patterns.URL, False),
    ],
)
def test_patterns_mean_what_python_checks(body: str, pattern: str, valid: bool) -> None:
    assert (re.fullmatch(pattern, body) is not None) is valid


def test_options_of_an_async_view_is_not_a_500(alice) -> None:
    assert alice.client.options("/run").status_code == 200


def test_a_last_event_id_of_other_digits_is_400(alice) -> None:
    run_id = alice.post("/run", {"agent": "echo", "message": "x"}).json()["run_id"]
    response = alice.client.get(f"/runs/{run_id}/events", HTTP_LAST_EVENT_ID="²")
    assert response.status_code == 400 and "Last-Event-ID" in response.json()["fields"]


@pytest.mark.parametrize("query", ["cursor=", "limit=", "limit=5.0", "limit=+5"])
def test_an_empty_or_loose_query_parameter_is_400(alice, query: str) -> None:
    alice.post("/run", {"agent": "echo", "message": "x", "session_id": SID})
    for path in [f"/sessions/{SID}/messages", f"/sessions/{SID}/runs"]:
        assert alice.get(f"{path}?{query}").status_code == 400, (path, query)


@pytest.mark.parametrize(
    ("field", "value"),
    [("user_id", "   "), ("session_id", " s-1"), ("agent", " echo"), ("message", "")],
)
def test_strings_are_taken_as_sent(alice, field: str, value: str) -> None:
    body = {"agent": "echo", "message": "x", field: value}
    response = alice.post("/run", body)
    assert response.status_code == 400 and field in response.json()["fields"]


def test_the_runs_cursor_pages_through_every_run(alice) -> None:
    for i in range(5):
        alice.post("/run", {"agent": "echo", "message": str(i), "session_id": SID})
    seen, cursor = [], None
    while True:
        page = alice.get(f"/sessions/{SID}/runs?limit=2" + (f"&cursor={cursor}" if cursor else "")).json()
        seen += [run["run_id"] for run in page["runs"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5


def test_a_webhook_whose_host_does_not_resolve_yet_is_taken(alice) -> None:
    """Its delivery resolves it, and refuses it then; a typo is not a 400 the document cannot state."""
    body = {"agent": "echo", "message": "x", "async": True, "webhook": "https://no-such-host.invalid/hook"}
    assert alice.post("/run", body).status_code == 202


def test_no_operation_describes_itself_with_a_python_docstring(document) -> None:
    """A view's class docstring becomes its operation's description: the document is for users, in
    Markdown, so none shows a docstring (reStructuredText's double backticks) of the code."""
    for name, operation in operations(document):
        assert "``" not in operation.get("description", ""), name
