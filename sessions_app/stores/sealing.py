"""Encryption at rest of what a store writes: messages, state values and events.

With ``AK_SESSION__ENCRYPTION_KEY`` set (one or more keys, comma-separated, each at least 32
characters), every payload a store writes is *sealed*: encrypted with AES-256-GCM under a key
derived for its tenant with HKDF-SHA256 from the first key and the tenant's slug, and bound (as
associated data) to its tenant and session, so that neither another tenant's key nor another
session's slot opens it. The stores call a ``Sealer`` at the one place each turns a payload into
the text it keeps and back; their keys, layout and round trips are unchanged.

A sealed payload is a marker, ``~2`` (bytes) or ``~1`` (ASCII text, the rest in base64), then a
4-byte id of the key that sealed it, a 12-byte random nonce and the ciphertext with its 16-byte
tag. JSON never starts with ``~``, so a store that held plain sessions before the key was set
reads them as before (and new payloads on them are sealed); ``open`` gives plain JSON back as is.

Rotation: put the new key first and keep the old ones after it. The first key seals; every listed
key opens what it sealed (picked by its id, no trial decryption); old payloads are sealed anew
when rewritten, or at once by ``manage.py reseal_sessions``. A payload no listed key opens, or a
sealed one read without any key, raises ``PayloadUnreadable``: never garbage, never plain text
pretended. Nothing here logs, and no error carries a payload or a key.

Why AES-GCM and not Fernet (which ``agents_app.secrets`` uses for a handful of small values): a
turn seals and opens tens of payloads, and GCM does it in about a third of Fernet's time (AES-NI,
no separate HMAC pass), with 32 bytes of overhead instead of Fernet's 57 before base64, and takes
associated data, which binds a payload to its session. Random 96-bit nonces are safe for some 2^32
payloads per tenant key; rotating the key starts the count again.
"""

from __future__ import annotations

import binascii
import os
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sessions_app.stores.base import Message, SessionKey, StoreError, dumps, loads

#: What a sealed payload starts with: as text (then base64), and as bytes (then the raw bytes).
MARKER: Final = "~1"
_MARKER_BYTES: Final = MARKER.encode()
_BINARY: Final = b"~2"
#: The shortest key accepted, in characters.
MIN_KEY_LENGTH: Final = 32
_ID_BYTES, _NONCE_BYTES = 4, 12
_KEY_INFO = b"akplatform session payloads v1 tenant:"
_ID_INFO = b"akplatform session payloads v1 key id"


class PayloadUnreadable(StoreError):
    """A stored payload is sealed and no configured key opens it (no key set, a key missing from
    ``AK_SESSION__ENCRYPTION_KEY``, or the payload was altered). The API answers it ``503``."""


def _hkdf(master: str, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(master.encode())


class _MasterKey:
    """One configured key: its id, and its per-tenant ciphers (derived once each, kept)."""

    def __init__(self, master: str) -> None:
        if len(master) < MIN_KEY_LENGTH:
            raise ValueError(f"an encryption key must be at least {MIN_KEY_LENGTH} characters long")
        self.id = _hkdf(master, _ID_INFO, _ID_BYTES)
        self._master = master
        self.cipher = lru_cache(maxsize=4096)(self._cipher)

    def _cipher(self, tenant: str) -> AESGCM:
        return AESGCM(_hkdf(self._master, _KEY_INFO + tenant.encode(), 32))


def _aad(key: SessionKey) -> bytes:
    return f"{key.tenant}\x00{key.session_id}".encode()


class Sealer:
    """Seals and opens one store's payloads. ``Sealer(())`` (``PLAIN``) writes plain JSON and
    refuses sealed payloads; with keys, the first seals and all open.

    Sealed payloads come in two forms: bytes (marker ``~2``, then the raw key id, nonce and
    ciphertext) for the stores that keep bytes (Redis, the in-memory store), and text (marker
    ``~1``, then the same in base64) for those that keep text (DynamoDB's ``S`` attributes); base64
    costs more than the decryption, so only the stores that need text pay it. ``open`` takes both.
    """

    def __init__(self, keys: Sequence[str]) -> None:
        self._keys = [_MasterKey(k) for k in keys]
        self._by_id = {k.id: k for k in reversed(self._keys)}
        if len(self._by_id) != len(self._keys):
            raise ValueError("two encryption keys share an id: list each key once")

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    # --- the stored payload ------------------------------------------------------------------

    def seal(self, key: SessionKey, text: str) -> str | bytes:
        """``text`` sealed under the first key for ``key``'s tenant and session, as bytes;
        unchanged without keys."""
        if not self._keys:
            return text
        first = self._keys[0]
        nonce = os.urandom(_NONCE_BYTES)
        return _BINARY + first.id + nonce + first.cipher(key.tenant).encrypt(nonce, text.encode(), _aad(key))

    def seal_text(self, key: SessionKey, text: str) -> str:
        """As ``seal``, as ASCII text."""
        sealed = self.seal(key, text)
        if isinstance(sealed, str):
            return sealed
        return MARKER + binascii.b2a_base64(sealed[2:], newline=False).decode()

    def opener(self, key: SessionKey) -> Callable[[str | bytes], str | bytes]:
        """``open`` for many payloads of one session (the tenant's ciphers looked up once)."""
        aad = _aad(key)
        ciphers: dict[bytes, AESGCM] = {}

        def open_(stored: str | bytes) -> str | bytes:
            if isinstance(stored, bytes):
                if stored[:2] != _BINARY:
                    return stored if stored[:2] != _MARKER_BYTES else open_(stored.decode())
                raw = stored[2:]
            elif stored[:2] == MARKER:
                try:
                    raw = binascii.a2b_base64(stored[2:])
                except (binascii.Error, ValueError):
                    raise PayloadUnreadable(f"a payload of session {key.session_id} is damaged") from None
            else:
                return stored
            key_id = raw[:_ID_BYTES]
            cipher = ciphers.get(key_id)
            if cipher is None:
                master = self._by_id.get(key_id)
                if master is None:
                    raise PayloadUnreadable(
                        f"a payload of session {key.session_id} is encrypted with a key that "
                        + (
                            "AK_SESSION__ENCRYPTION_KEY does not list"
                            if self._keys
                            else "AK_SESSION__ENCRYPTION_KEY would hold: it is not set"
                        )
                    )
                cipher = ciphers[key_id] = master.cipher(key.tenant)
            try:
                return cipher.decrypt(raw[_ID_BYTES : _ID_BYTES + _NONCE_BYTES], raw[_ID_BYTES + _NONCE_BYTES :], aad)
            except InvalidTag:
                raise PayloadUnreadable(
                    f"a payload of session {key.session_id} does not open with its key: altered, or another session's"
                ) from None

        return open_

    def open(self, key: SessionKey, stored: str | bytes) -> str | bytes:
        """The JSON text of a stored payload: plain JSON as it is, a sealed one opened (as bytes).
        Raises ``PayloadUnreadable``."""
        return self.opener(key)(stored)

    def reseal(self, key: SessionKey, stored: str | bytes) -> str | bytes | None:
        """``stored`` sealed under the first key, in its own form (bytes, or text for text and
        plain JSON), or None when it already is under the first key (or no key is set)."""
        if not self._keys or (is_sealed(stored) and _key_id(stored) == self._keys[0].id):
            return None
        opened = self.open(key, stored)
        text = opened.decode() if isinstance(opened, bytes) else opened
        return (
            self.seal(key, text) if isinstance(stored, bytes) and stored[:2] == _BINARY else self.seal_text(key, text)
        )

    # --- what the stores write and read ------------------------------------------------------

    def message(self, key: SessionKey, message: Message) -> str | bytes:
        return self.seal(key, message.to_json())

    def open_message(self, key: SessionKey, stored: str | bytes) -> Message:
        return Message.from_json(self.open(key, stored))

    def value(self, key: SessionKey, value: Any) -> str | bytes:
        """A state value (``dumps``: JSON only), sealed."""
        return self.seal(key, dumps(value))

    def open_value(self, key: SessionKey, stored: str | bytes) -> Any:
        return loads(self.open(key, stored))


def _key_id(stored: str | bytes) -> bytes:
    if isinstance(stored, bytes) and stored[:2] == _BINARY:
        return stored[2 : 2 + _ID_BYTES]
    return binascii.a2b_base64(stored[2:10])[:_ID_BYTES]  # 8 base64 characters: 6 bytes


def is_sealed(stored: str | bytes) -> bool:
    """Whether a stored payload is sealed (plain JSON never starts with ``~``)."""
    return stored[:2] in (_MARKER_BYTES, _BINARY) if isinstance(stored, bytes) else stored[:2] == MARKER


#: No key: plain JSON written, sealed payloads refused.
PLAIN: Final = Sealer(())


def sealer_from_settings() -> Sealer:
    """The sealer of ``settings.AK_SESSION["ENCRYPTION_KEYS"]`` (``PLAIN`` when there are none)."""
    from django.conf import settings

    keys = tuple(settings.AK_SESSION.get("ENCRYPTION_KEYS", ()))
    return _sealer(keys)


@lru_cache(maxsize=8)
def _sealer(keys: tuple[str, ...]) -> Sealer:
    return Sealer(keys) if keys else PLAIN
