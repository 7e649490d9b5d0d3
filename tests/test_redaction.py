"""URLs' passwords never shown: Django's debug page and error reports (settings and local
variables), and every log line, text or JSON."""

from __future__ import annotations

import json
import logging
import sys

import pytest
from django.test import RequestFactory
from django.views.debug import ExceptionReporter, technical_500_response

from infra.logs import JsonFormatter, TextFormatter
from infra.redact import redact_urls

PASSWORDS = ["broker-pw-1", "store-pw-2", "list-pw-3", "local-pw-4", "dict-pw-5"]


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("redis://:pw@h:6379/0", "redis://:********@h:6379/0"),
        ("amqp://guest:guest@rabbit:5672//", "amqp://guest:********@rabbit:5672//"),
        (
            "postgres://u:p%40ss@db:5432/x and rediss://a:b@c",
            "postgres://u:********@db:5432/x and rediss://a:********@c",
        ),
        ("http://host:8000/path", "http://host:8000/path"),  # a port is no password
        ("redis://user@host/0", "redis://user@host/0"),  # no password
        ("no url at all", "no url at all"),
    ],
)
def test_redact_urls(text: str, shown: str) -> None:
    assert redact_urls(text) == shown


def _failure() -> tuple:
    # Built from pieces: the page also shows these lines of source, which must not hold a password.
    url = "redis://:" + "local-" + "pw-4@cache.internal:6379/2"  # noqa: F841 - a local variable the page shows
    config = {"broker": "amqp://u:" + "dict-" + "pw-5@rabbit//"}  # noqa: F841
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        return sys.exc_info()


@pytest.fixture
def url_settings(settings) -> None:
    settings.DEBUG = True  # as under make run
    settings.CELERY_BROKER_URL = "amqp://guest:broker-pw-1@rabbit.internal:5672//"
    settings.AK_SESSION = {
        **settings.AK_SESSION,
        "REDIS": {**settings.AK_SESSION["REDIS"], "URL": "redis://:store-pw-2@r:6379/0"},
    }
    settings.AK_TEST_URLS = ["redis://:list-pw-3@r2:6379/1"]


def test_the_debug_page_shows_no_password(url_settings) -> None:
    request = RequestFactory().get("/run")
    page = technical_500_response(request, *_failure()).content.decode()
    assert "CELERY_BROKER_URL" in page and "rabbit.internal" in page and "cache.internal" in page
    assert "********" in page
    for password in PASSWORDS:
        assert password not in page


def test_error_reports_show_no_password(url_settings) -> None:
    reporter = ExceptionReporter(RequestFactory().get("/run"), *_failure())
    for report in (reporter.get_traceback_text(), reporter.get_traceback_html()):
        assert "rabbit.internal" in report
        for password in PASSWORDS:
            assert password not in report


@pytest.mark.parametrize("formatter", [TextFormatter("%(message)s"), JsonFormatter()])
def test_log_lines_show_no_password(formatter: logging.Formatter) -> None:
    try:
        raise ConnectionError("cannot reach redis://:local-pw-4@cache.internal:6379/0")
    except ConnectionError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "x", logging.ERROR, __file__, 1, "broker %s down", ("amqp://u:broker-pw-1@rabbit//",), exc_info
    )
    line = formatter.format(record)
    assert "rabbit" in line and "cache.internal" in line
    assert "broker-pw-1" not in line and "local-pw-4" not in line
    if isinstance(formatter, JsonFormatter):
        assert json.loads(line)["message"] == "broker amqp://u:********@rabbit// down"
