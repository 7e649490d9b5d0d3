"""Passwords in URLs never shown: not on Django's debug page, not in its error reports, not in logs.

``redis://:pw@host:6379/0`` comes out as ``redis://:********@host:6379/0``: the rest of the URL
stays, it says where. No Django here: gunicorn's arbiter loads the log formatters before settings.
"""

from __future__ import annotations

import re

SUBSTITUTE = "********"

# scheme://[user]:password@ : the password is what lies between the first ":" after "//" and
# the last "@" before the host (a password may hold "@" and ":" when it is not percent-encoded).
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<password>[^\s/]*)@")


def redact_urls(text: str, substitute: str = SUBSTITUTE) -> str:
    """``text`` with the password of every URL in it replaced by ``substitute``."""
    if "://" not in text:  # the common case, at the cost of a scan
        return text
    return _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{substitute}@", text)
