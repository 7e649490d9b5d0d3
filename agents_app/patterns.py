"""The shapes of strings the API takes, written once for the server and for the OpenAPI document.

Each is the body of a pattern: the server matches it whole, the document anchors it as
``^(?:...)$``. So they avoid what Python's and ECMA 262's engines disagree on: no ``\\s``, ``\\d``,
``\\w`` or ``.``, and characters outside ASCII's printable ones as ``\\uXXXX``.
"""

from __future__ import annotations

import re

#: What ``str.isspace`` (and so ``str.strip``) calls a space.
SPACES = r"\u0009-\u000d\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
#: An agent's or a secret's name.
NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}"
SESSION_ID = r"[A-Za-z0-9][A-Za-z0-9._:@-]*"
#: Any text without a null character (which PostgreSQL's text and JSON cannot hold).
NO_NUL = r"[^\u0000]*"
#: Some text that is not only spaces, without a null character.
NOT_BLANK = rf"[^\u0000]*[^\u0000{SPACES}][^\u0000]*"

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_H16 = r"[0-9A-Fa-f]{1,4}"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_LS32 = rf"(?:{_H16}:{_H16}|{_OCTET}(?:\.{_OCTET}){{3}})"
#: RFC 3986's IPv6address: what ``ipaddress.IPv6Address`` takes (without a zone).
IPV6 = (
    rf"(?:(?:{_H16}:){{6}}{_LS32}"
    rf"|::(?:{_H16}:){{5}}{_LS32}"
    rf"|(?:{_H16})?::(?:{_H16}:){{4}}{_LS32}"
    rf"|(?:(?:{_H16}:){{0,1}}{_H16})?::(?:{_H16}:){{3}}{_LS32}"
    rf"|(?:(?:{_H16}:){{0,2}}{_H16})?::(?:{_H16}:){{2}}{_LS32}"
    rf"|(?:(?:{_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}"
    rf"|(?:(?:{_H16}:){{0,4}}{_H16})?::{_LS32}"
    rf"|(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}"
    rf"|(?:(?:{_H16}:){{0,6}}{_H16})?::)"
)
_HOST = rf"(?:{_LABEL}(?:\.{_LABEL})*\.?|\[{IPV6}\])"
_PORT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
#: A URL the platform calls (a webhook, a model server): http or https, a host name, a dotted
#: address or an IPv6 one in brackets, a port, then a path, query and fragment of printable ASCII.
#: Where its host resolves to is checked apart (``agents_app.outbound``).
URL = rf"https?://{_HOST}(?::{_PORT})?(?:[/?#][\u0021-\u007e]*)?"


def anchored(body: str) -> str:
    """The pattern of the document: the whole string is ``body``."""
    return f"^(?:{body})$"


def validator_regex(body: str) -> str:
    """The pattern of a Django ``RegexValidator`` (which searches): the whole string is ``body``.
    drf-spectacular writes ``\\A`` and ``\\Z`` as ``^`` and ``$`` in the document."""
    return rf"\A(?:{body})\Z"


def matches(body: str, value: str) -> bool:
    return re.fullmatch(body, value) is not None
