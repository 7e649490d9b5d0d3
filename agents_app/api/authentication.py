"""API-key authentication: ``Authorization: Bearer <key>``. The key decides the tenant."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils import timezone
from rest_framework import authentication, exceptions

from akplatform.lockout import lockout_failed, lockout_wait
from sessions_app.models import ApiKey, Tenant

if TYPE_CHECKING:
    from rest_framework.request import Request

LAST_USED_RESOLUTION = timedelta(minutes=1)  # at most one write per key per minute


class KnownKeys:
    """The keys this process looked up in the last ``AK_API__KEY_CACHE_SECONDS`` (unknown ones
    too), so that a client's requests cost no query each: a revoked key stops working within
    that time in every process. Kept in the process, as objects: nothing is serialized."""

    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, ApiKey | None]] = {}

    def get(self, key_hash: str) -> ApiKey | None:
        """The live key with this hash, with its tenant, or None."""
        ttl = settings.AK_API["KEY_CACHE_SECONDS"]
        entry = self._entries.get(key_hash)
        if entry is not None and time.monotonic() - entry[0] < ttl:
            return entry[1]
        try:
            key: ApiKey | None = ApiKey.objects.select_related("tenant").get(key_hash=key_hash, revoked_at=None)
        except ApiKey.DoesNotExist:
            key = None
        if ttl > 0:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[key_hash] = (time.monotonic(), key)
        return key

    def forget(self, key_hash: str) -> None:
        self._entries.pop(key_hash, None)


_known_keys = KnownKeys()


def api_key_changed(sender: type[ApiKey], instance: ApiKey, **kwargs: object) -> None:
    """``post_save`` of an ApiKey (revoked): this process forgets it at once."""
    _known_keys.forget(instance.key_hash)


@dataclass(frozen=True)
class TenantPrincipal:
    """``request.user`` of an API request: the tenant the key belongs to."""

    tenant: Tenant
    api_key: ApiKey
    is_authenticated: bool = True

    @property
    def pk(self) -> int:
        return self.api_key.pk


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[TenantPrincipal, ApiKey] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization must be 'Bearer <api key>'.")
        wait = lockout_wait(request)
        if wait is not None:  # before the key is looked at: a guess tells nothing while it waits
            raise exceptions.Throttled(wait=wait, detail="Too many failed authentications from this address.")
        try:
            key = _known_keys.get(ApiKey.hash(header[1].decode()))
        except UnicodeDecodeError:
            key = None
        if key is None:
            lockout_failed(request)
            raise exceptions.AuthenticationFailed("Invalid API key.")
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
            key.last_used_at = now
        return TenantPrincipal(tenant=key.tenant, api_key=key), key

    def authenticate_header(self, request: Request) -> str:
        return self.keyword
