"""``DEFAULT_EXCEPTION_REPORTER_FILTER``: what Django's debug page and error reports show.

Django's ``SafeExceptionReporterFilter``, which also masks the password of every URL in any setting
and in the traceback's local variables (``infra.redact``).
"""

from __future__ import annotations

from pprint import pformat
from typing import Any

from django.views.debug import SafeExceptionReporterFilter

from infra.redact import redact_urls


class ExceptionReporterFilter(SafeExceptionReporterFilter):
    """Django's ``SafeExceptionReporterFilter``, which also masks the passwords of URLs."""

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        """A setting as the debug page and error reports show it: Django's cleansing (which calls
        this again for each item of a dict, list or tuple), then a string's URL passwords masked."""
        cleansed = super().cleanse_setting(key, value)
        if isinstance(cleansed, str):
            return redact_urls(cleansed, self.cleansed_substitute)
        return cleansed

    def get_traceback_frame_variables(self, request: Any, tb_frame: Any) -> Any:
        """The frame's variables as Django's filter gives them, with the URL passwords masked in
        what the page prints of them (a string, or the ``pformat`` of anything else)."""
        variables = super().get_traceback_frame_variables(request, tb_frame)
        return [(name, self._redacted(value)) for name, value in variables]

    def _redacted(self, value: Any) -> Any:
        if isinstance(value, str):
            return redact_urls(value, self.cleansed_substitute)
        try:
            shown = pformat(value)
        except Exception:  # a repr that fails: the page says so itself
            return value
        redacted = redact_urls(shown, self.cleansed_substitute)
        return value if redacted == shown else _Shown(redacted)


class _Shown:
    """A variable's printed form, already masked (what ``pformat`` gives is its ``repr``)."""

    def __init__(self, text: str) -> None:
        self._text = text

    def __repr__(self) -> str:
        return self._text
