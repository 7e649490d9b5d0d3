"""The API's JSON parser: DRF's, with a bound on how deep a body may nest.

A body nested deeper than ``MAX_JSON_DEPTH`` levels (the body itself is level 1: ``{"config":
{"a": 1}}`` is 2 deep) is a 400 naming the top-level field it is under, before any view sees it:
walking deep data recursively (validation, rendering, the store's encoders) would be a 500.
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
_KEY_END = re.compile(r"\s*:")


def _too_deep(text: str, limit: int) -> str | None:
    """The first top-level key whose value nests deeper than ``limit`` in the JSON ``text``
    (``"non_field_errors"`` when the body is not an object), or None. Read as text, without
    recursion: any depth is safe to walk, even one too deep for the parser."""
    if text.count("[") + text.count("{") <= limit:  # no deeper than its brackets, quoted ones too
        return None
    depth, field, i = 0, "non_field_errors", 0
    while i < len(text):
        char = text[i]
        if char == '"':
            match = _STRING.match(text, i)
            if match is None:
                return None
            if depth == 1 and _KEY_END.match(text, match.end()):
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
    return None


class JSONParser(parsers.JSONParser):
    """DRF's ``JSONParser``; a body deeper than ``MAX_JSON_DEPTH`` is a ``ValidationError`` (400)
    naming its field."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        body = stream.read() if stream is not None else b""
        try:
            data = super().parse(io.BytesIO(body), media_type, parser_context)
        except RecursionError:  # too deep for the parser itself: the scan below names the field
            data = None
        field = _too_deep(body.decode("utf-8", "replace"), MAX_JSON_DEPTH)
        if field is not None:
            raise exceptions.ValidationError({field: [f"Nested deeper than {MAX_JSON_DEPTH} levels."]})
        return data
