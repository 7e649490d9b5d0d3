"""The API's JSON parser: DRF's, with a bound on how deep a body may nest.

A body nested deeper than ``MAX_JSON_DEPTH`` levels (the body itself is level 1: ``{"config":
{"a": 1}}`` is 2 deep) is a 400 naming the top-level field it is under, before any view or
serializer sees it: deep data is no use to any endpoint, and walking it recursively (validation,
JSON Schema, rendering, the store's encoders) would end in a ``RecursionError``, a 500.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

from rest_framework import exceptions, parsers

#: The deepest a request body may nest, the body itself included.
MAX_JSON_DEPTH = 64

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)


def _too_deep(data: Any, limit: int) -> list[str]:
    """The top-level keys under which ``data`` nests deeper than ``limit`` (``"non_field_errors"``
    when the body itself is not an object). Iterative: any depth is safe to walk."""
    if isinstance(data, dict):
        stack = [(value, 2, str(key)) for key, value in data.items()]
    else:
        stack = [(data, 1, "non_field_errors")]
    fields: list[str] = []
    while stack:
        value, depth, field = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            if field not in fields:
                fields.append(field)
            continue
        stack.extend((child, depth + 1, field) for child in children)
    return sorted(fields)


def _too_deep_text(text: str, limit: int) -> str:
    """The top-level key whose value nests deeper than ``limit`` in the JSON ``text`` (read without
    parsing it: for a body too deep for the parser itself), or ``"non_field_errors"``."""
    depth, field, i = 0, "non_field_errors", 0
    while i < len(text):
        char = text[i]
        if char == '"':
            match = _STRING.match(text, i)
            if match is None:
                break
            if depth == 1 and text[match.end() :].lstrip().startswith(":"):
                try:
                    field = str(json.loads(match.group()))
                except ValueError:
                    field = "non_field_errors"
            i = match.end()
            continue
        if char in "[{":
            depth += 1
            if depth > limit:
                return field if text.lstrip().startswith("{") else "non_field_errors"
        elif char in "]}":
            depth -= 1
        i += 1
    return field


class JSONParser(parsers.JSONParser):
    """DRF's ``JSONParser``; a body deeper than ``MAX_JSON_DEPTH`` is a ``ValidationError`` (400)
    naming its field."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        body = stream.read() if stream is not None else b""
        try:
            data = super().parse(io.BytesIO(body), media_type, parser_context)
        except RecursionError:  # too deep for the parser itself: which field, from the text
            raise self._error([_too_deep_text(body.decode("utf-8", "replace"), MAX_JSON_DEPTH)]) from None
        fields = _too_deep(data, MAX_JSON_DEPTH)
        if fields:
            raise self._error(fields)
        return data

    @staticmethod
    def _error(fields: list[str]) -> exceptions.ValidationError:
        message = f"Nested deeper than {MAX_JSON_DEPTH} levels."
        return exceptions.ValidationError({field: [message] for field in fields})
