"""Logs as JSON lines (``AK_LOG_FORMAT=json``), each with the request and the run it belongs to.

    {"time": "2025-01-01T12:00:00.123+00:00", "level": "INFO", "logger": "agents_app.runs.transitions",
     "message": "run 1f… succeeded", "request_id": "9c…", "run_id": "1f…", "tenant": "acme"}

The fields come from the context: ``bind()`` adds them for the code that runs after it in the same
task, ``carrying()`` takes them to a thread (``infra.io_threads.blocking`` does). A record's own
``extra={"run_id": ...}`` wins; ``extra={"event": {...}}`` adds a structured event as it is. Both
formatters mask the password of any URL in a line (``infra.redact``); a failed run logs its
exception's type and traceback, not its message, unless ``AK_LOG__CONTENT=1`` (``exception_summary``).
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any, TypeVar

from infra.redact import redact_urls

T = TypeVar("T")

FIELDS = ("request_id", "run_id", "tenant")

_fields: ContextVar[dict[str, str] | None] = ContextVar("ak_log_fields", default=None)


def bind(**fields: str) -> Token[dict[str, str] | None]:
    """Add ``fields`` (of ``FIELDS``) to the logs of the current context; ``unbind`` the token to end them."""
    return _fields.set({**bound(), **fields})


def unbind(token: Token[dict[str, str] | None]) -> None:
    _fields.reset(token)


def bound() -> dict[str, str]:
    """The fields the current context's logs carry."""
    return _fields.get() or {}


def carrying(call: Callable[..., T]) -> Callable[..., T]:
    """``call``, to be called in another thread with the current context's fields."""
    fields = _fields.get()
    if not fields:
        return call

    def with_fields(*args: Any, **kwargs: Any) -> T:
        token = _fields.set(fields)
        try:
            return call(*args, **kwargs)
        finally:
            _fields.reset(token)

    return with_fields


def exception_summary(exc: BaseException) -> str:
    """``exc``'s traceback as Python prints it, each exception of the chain by its type only: its
    message may hold a user's or a model's words (``settings.AK_LOG_CONTENT`` logs it whole)."""
    chain: list[tuple[BaseException, str]] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    link = ""
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append((current, link))
        if current.__cause__ is not None:
            current, link = current.__cause__, "The above exception was the direct cause of the following exception:"
        elif current.__context__ is not None and not current.__suppress_context__:
            current, link = current.__context__, "During handling of the above exception, another exception occurred:"
        else:
            current = None
    parts: list[str] = []
    for error, following in reversed(chain):  # the first cause first, as Python prints them
        frames = "".join(traceback.format_tb(error.__traceback__))
        name = f"{type(error).__module__}.{type(error).__qualname__}"
        parts.append(f"Traceback (most recent call last):\n{frames}{name} (message withheld)")
        if following:
            parts.append(f"\n{following}\n")
    return "\n".join(parts)


class TextFormatter(logging.Formatter):
    """``logging.Formatter``, with the password of any URL in a line masked."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_urls(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message``, the bound fields
    that are set, ``event`` when the record carries one, and ``exception`` (its traceback) if any.
    Newlines inside are escaped."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact_urls(record.getMessage()),
        }
        context = bound()
        for name in FIELDS:
            value = getattr(record, name, None) or context.get(name)
            if value:
                entry[name] = str(value)
        event = getattr(record, "event", None)
        if isinstance(event, dict):  # a structured event (a budget's alert): its fields as they are
            entry["event"] = event
        if record.exc_info:
            entry["exception"] = redact_urls(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = redact_urls(record.exc_text)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)
