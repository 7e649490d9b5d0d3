"""Request ids (``X-Request-ID``) and logs as JSON lines with the request, the run and the tenant."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable
from typing import TypeVar

import pytest
from django.test import AsyncClient, Client

from infra import logs
from infra.logs import JsonFormatter
from tests.services import ROOT

GENERATED = re.compile(r"[0-9a-f]{32}")
T = TypeVar("T")


def test_a_request_id_is_returned_as_given() -> None:
    response = Client().get("/health", HTTP_X_REQUEST_ID="req-1234_abc.DEF")
    assert response["X-Request-ID"] == "req-1234_abc.DEF"


def test_a_request_id_is_made_when_there_is_none() -> None:
    first, second = Client().get("/health"), Client().get("/health")
    assert GENERATED.fullmatch(first["X-Request-ID"]) and GENERATED.fullmatch(second["X-Request-ID"])
    assert first["X-Request-ID"] != second["X-Request-ID"]


@pytest.mark.parametrize("given", ["", "x" * 201, "two words", "tab\there", "caf\u00e9"])
def test_an_invalid_request_id_is_replaced(given: str) -> None:
    response = Client().get("/health", HTTP_X_REQUEST_ID=given)
    assert GENERATED.fullmatch(response["X-Request-ID"])


def test_every_answer_has_its_request_id(alice) -> None:
    assert Client().get("/nowhere", HTTP_X_REQUEST_ID="r-404")["X-Request-ID"] == "r-404"
    assert Client().get("/runs", HTTP_X_REQUEST_ID="r-401")["X-Request-ID"] == "r-401"
    assert alice.post("/run", {"agent": "echo"}, HTTP_X_REQUEST_ID="r-400")["X-Request-ID"] == "r-400"
    assert alice.post("/run", {"agent": "echo", "message": "x"}, HTTP_X_REQUEST_ID="r-200")["X-Request-ID"] == "r-200"


def test_the_request_id_is_returned_under_asgi() -> None:
    # A task of its own, as Django's ASGI handler makes for each request: the id stays with it.
    # (Tests that call AsyncClient through async_to_sync get it back in their thread: asgiref
    # copies a coroutine's context changes back to its caller.)
    before = logs.bound()
    response = asyncio.run(AsyncClient().get("/health", headers={"X-Request-ID": "asgi-1"}))
    assert response["X-Request-ID"] == "asgi-1"
    assert logs.bound() == before


def test_a_sync_request_leaves_no_request_id_behind() -> None:
    before = logs.bound()
    Client().get("/health", HTTP_X_REQUEST_ID="sync-1")
    assert logs.bound() == before


def record(message: str = "hello %s", *args: object, **attributes: object) -> logging.LogRecord:
    if not args and "%s" in message:
        args = ("world",)
    made = logging.LogRecord("tests.logs", logging.WARNING, __file__, 1, message, args, None)
    made.__dict__.update(attributes)
    return made


def in_a_fresh_context(call: Callable[[], T]) -> T:
    """``call()`` with no log fields bound, whatever earlier tests left in this thread's context."""
    return contextvars.Context().run(call)


def test_a_json_line_has_the_time_level_logger_and_message() -> None:
    entry = json.loads(in_a_fresh_context(lambda: JsonFormatter().format(record())))
    assert entry["level"] == "WARNING" and entry["logger"] == "tests.logs" and entry["message"] == "hello world"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", entry["time"])
    assert not {"request_id", "run_id", "tenant", "exception"} & set(entry)  # none is set


def test_a_json_line_has_the_bound_request_run_and_tenant() -> None:
    def lines() -> tuple[dict, dict, dict]:
        token = logs.bind(request_id="req-1", tenant="acme")
        inner = logs.bind(run_id="run-1")
        entry = json.loads(JsonFormatter().format(record()))
        logs.unbind(inner)
        after = json.loads(JsonFormatter().format(record()))
        logs.unbind(token)
        return entry, after, logs.bound()

    entry, after, left = in_a_fresh_context(lines)
    assert (entry["request_id"], entry["run_id"], entry["tenant"]) == ("req-1", "run-1", "acme")
    assert "run_id" not in after and after["request_id"] == "req-1"
    assert left == {}


def test_a_records_own_fields_win_over_the_context() -> None:
    token = logs.bind(run_id="from-context")
    try:
        entry = json.loads(JsonFormatter().format(record(run_id="from-record")))
    finally:
        logs.unbind(token)
    assert entry["run_id"] == "from-record"


def test_a_json_line_is_one_line_with_the_exception() -> None:
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        failed = record("line one\nline two", exc_info=sys.exc_info())
    line = JsonFormatter().format(failed)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "line one\nline two"
    assert "Traceback" in entry["exception"] and "ValueError: bad\nthing" in entry["exception"]


def test_a_runs_log_lines_carry_the_run_its_tenant_and_the_request(alice, caplog) -> None:
    """The run's end is logged in an I/O thread (``infra.io_threads.blocking``): its fields go along."""
    caplog.handler.setFormatter(JsonFormatter())  # formatted as each record comes, in its context
    with caplog.at_level(logging.INFO, logger="agents_app.runs.transitions"):
        answer = alice.post("/run", {"agent": "echo", "message": "hi"}, HTTP_X_REQUEST_ID="req-run-1")
    assert answer.status_code == 200
    entries = [json.loads(line) for line in caplog.text.splitlines() if line.startswith("{")]
    ended = [e for e in entries if e["logger"] == "agents_app.runs.transitions"]
    assert len(ended) == 1
    assert ended[0]["run_id"] == answer.json()["run_id"]
    assert ended[0]["tenant"] == alice.tenant.slug
    assert ended[0]["request_id"] == "req-run-1"
    assert "succeeded" in ended[0]["message"]


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "akplatform.settings", "DJANGO_DEBUG": "1", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_ak_log_format_json_makes_every_line_json() -> None:
    say = "import logging; logging.getLogger('tests.cli').warning('said %s', 'this')"
    result = manage("shell", "-c", say, AK_LOG_FORMAT="json")
    assert result.returncode == 0, result.stderr
    entries = [json.loads(line) for line in result.stderr.splitlines()]
    assert [(e["logger"], e["message"]) for e in entries] == [("tests.cli", "said this")]
    text = manage("shell", "-c", say, AK_LOG_FORMAT="text")
    assert text.stderr.strip().endswith("WARNING tests.cli: said this")


def test_an_unknown_log_format_stops_start_up() -> None:
    result = manage("check", AK_LOG_FORMAT="xml")
    assert result.returncode != 0 and "AK_LOG_FORMAT" in result.stderr
