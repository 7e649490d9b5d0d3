"""Logs carry no user's or model's words unless AK_LOG__CONTENT asks: a failed run is logged by
its exception's type and traceback, the message (the model server's answer) withheld."""

from __future__ import annotations

import logging

import pytest

from infra.logs import JsonFormatter, TextFormatter
from tests.agents_app.test_openai_chat import chat_agent

WORDS = "the-user-said-PINEAPPLE-42"


def _failed_run_lines(alice, model_server, caplog) -> list[str]:
    chat_agent(alice, model_server)
    model_server.fail(500, f"cannot answer: {WORDS}")
    with caplog.at_level(logging.INFO):
        answer = alice.post("/run", {"agent": "gpt", "message": "hello", "session_id": "logs-1"})
    assert answer.status_code == 502
    assert WORDS in answer.json()["detail"]  # the tenant sees its own run's error
    assert any(r.name == "agents_app.runs.execute" for r in caplog.records), [r.getMessage() for r in caplog.records]
    return [formatter.format(r) for r in caplog.records for formatter in (TextFormatter(), JsonFormatter())]


def test_a_failed_run_logs_no_content_by_default(alice, model_server, caplog) -> None:
    lines = _failed_run_lines(alice, model_server, caplog)
    assert all(WORDS not in line for line in lines), lines
    text = "\n".join(lines)
    assert "failed" in text and "ModelError (message withheld)" in text and "Traceback" in text


def test_content_is_logged_when_the_setting_asks(alice, model_server, caplog, settings) -> None:
    settings.AK_LOG_CONTENT = True
    lines = _failed_run_lines(alice, model_server, caplog)
    assert any(WORDS in line for line in lines)


@pytest.mark.parametrize("chained", [False, True])
def test_the_summary_keeps_the_chain_and_drops_the_messages(chained: bool) -> None:
    from infra.logs import exception_summary

    try:
        try:
            raise KeyError(WORDS)
        except KeyError as inner:
            if chained:
                raise ValueError(WORDS) from inner
            raise ValueError(WORDS)  # noqa: B904 - the implicit chain, on purpose
    except ValueError as exc:
        summary = exception_summary(exc)
    assert WORDS not in summary
    assert "builtins.KeyError (message withheld)" in summary and "builtins.ValueError (message withheld)" in summary
    assert summary.index("KeyError") < summary.index("ValueError")  # the cause first, as Python prints it
    assert ("direct cause" in summary) is chained
