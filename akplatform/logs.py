"""Logs as JSON lines (``AK_LOG_FORMAT=json``), each with the request and the run it belongs to.

    {"time": "2025-01-01T12:00:00.123+00:00", "level": "INFO", "logger": "agents_app.runs.transitions",
     "message": "run 1f… succeeded", "request_id": "9c…", "run_id": "1f…", "tenant": "acme"}

The fields come from the context of the code that logs: ``bind()`` adds them for the code that
runs after it in the same task (asyncio tasks made meanwhile inherit them), and ``carrying()``
takes them along to a thread (``akplatform.aio.blocking`` does, for every blocking call). The
request id is bound by ``akplatform.request_id``, the run and its tenant by ``runs.execute``. A
record's own ``extra={"run_id": ...}`` wins over the context.

Log lines carry messages, never configuration: no value of a setting or a secret is logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any, TypeVar

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


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message``, the bound fields
    that are set, and ``exception`` (its traceback) if any. Newlines inside are escaped."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = bound()
        for name in FIELDS:
            value = getattr(record, name, None) or context.get(name)
            if value:
                entry[name] = str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)
