"""Tenant secrets at rest: Fernet encryption under a key derived from ``AK_SECRETS_KEY``.

A secret's value is stored only as a Fernet token, under a key derived from ``AK_SECRETS_KEY``
with HKDF-SHA256 (any string of at least 32 characters is a key). Key rotation: set the new key as
``AK_SECRETS_KEY`` and list the old ones, newest first, in ``AK_SECRETS_OLD_KEYS``: their values
still decrypt, and are encrypted anew when next set, or all at once by
``agents_app.services.secret_reencrypt_all``; then the old key may be dropped.

Nothing here logs, and no error message carries a value, a ciphertext or a key.
"""

from __future__ import annotations

import base64
from functools import lru_cache, partial

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

#: A secret's name: what an agent's config names (``{"secret": NAME}``), as the model validates it.
SECRET_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"  # noqa: S105 - a pattern, not a password
#: The largest value, in UTF-8 bytes.
SECRET_VALUE_MAX_BYTES = 8 * 1024

_HKDF_INFO = b"akplatform tenant secrets v1"
_UNREADABLE = "A secret could not be decrypted with AK_SECRETS_KEY or any of AK_SECRETS_OLD_KEYS."


class SecretMissing(LookupError):
    """The tenant has no secret of that name (the message names the secret, never a value)."""


class SecretUnreadable(SecretMissing):
    """The secret exists but none of the configured keys decrypts it: it was encrypted with a key
    that is neither ``AK_SECRETS_KEY`` nor in ``AK_SECRETS_OLD_KEYS``."""


def secret_value_check(value: object) -> str:
    """``value`` if it may be a secret's value (a non-empty string of at most 8 KB), else
    ``ValueError`` (whose message does not quote it)."""
    if not isinstance(value, str):
        raise ValueError("A secret's value must be a string.")
    if not value:
        raise ValueError("A secret's value may not be empty.")
    if len(value.encode()) > SECRET_VALUE_MAX_BYTES:
        raise ValueError(f"A secret's value may be at most {SECRET_VALUE_MAX_BYTES} bytes (UTF-8).")
    return value


@lru_cache(maxsize=8)
def _fernet(key: str, old_keys: tuple[str, ...]) -> MultiFernet:
    """The keys, each derived with HKDF-SHA256 (a new HKDF for each: one derives once)."""
    hkdf = partial(HKDF, algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO)
    return MultiFernet([Fernet(base64.urlsafe_b64encode(hkdf().derive(k.encode()))) for k in (key, *old_keys)])


def _current() -> MultiFernet:
    """The keys of the current settings (read at each call, so ``override_settings`` applies)."""
    return _fernet(settings.AK_SECRETS_KEY, tuple(settings.AK_SECRETS_OLD_KEYS))


@sensitive_variables("value")
def secret_encrypt(value: str) -> str:
    """The Fernet token of ``value`` under ``AK_SECRETS_KEY`` (ASCII text)."""
    return _current().encrypt(value.encode()).decode()


@sensitive_variables()
def secret_decrypt(ciphertext: str) -> str:
    """The value of a token made by ``secret_encrypt`` with the current key or an old one;
    ``SecretUnreadable`` when no configured key decrypts it."""
    try:
        return _current().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(_UNREADABLE) from None


def secret_reencrypt(ciphertext: str) -> str:
    """The token re-encrypted under the current key (``SecretUnreadable`` as ``secret_decrypt``)."""
    try:
        return _current().rotate(ciphertext.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(_UNREADABLE) from None
