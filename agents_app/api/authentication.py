"""API-key authentication: ``Authorization: Bearer <key>``. The key decides the tenant.

A key is looked up by its hash, or remembered by the process while no key or tenant has changed
anywhere (``key_cache``): a revoked or deleted key is refused by every process from its next
request on. Failed authentications lock out their address, never a valid key (``infra.lockout``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from django.utils import timezone
from rest_framework import authentication, exceptions

from agents_app.api.key_cache import cached_key
from infra.lockout import lockout_failed, lockout_wait
from sessions_app.models import ApiKey, Tenant

if TYPE_CHECKING:
    from rest_framework.request import Request

LAST_USED_RESOLUTION = timedelta(minutes=1)  # at most one write per key per minute


def _live_key(key_hash: str) -> ApiKey | None:
    try:
        return ApiKey.objects.select_related("tenant").get(key_hash=key_hash, revoked_at=None)
    except ApiKey.DoesNotExist:
        return None


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
        try:
            key_hash = ApiKey.hash(header[1].decode())
            key = cached_key(key_hash, lambda: _live_key(key_hash))
        except UnicodeDecodeError:
            key = None
        if key is None:
            # The key first: a valid one passes whatever its address did; a bad one from an
            # address over its limit is a 429 until its window has passed.
            wait = lockout_wait(request)
            if wait is not None:
                raise exceptions.Throttled(wait=wait, detail="Too many failed authentications from this address.")
            lockout_failed(request)
            raise exceptions.AuthenticationFailed("Invalid API key.")
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
            key.last_used_at = now
        return TenantPrincipal(tenant=key.tenant, api_key=key), key

    def authenticate_header(self, request: Request) -> str:
        return self.keyword
