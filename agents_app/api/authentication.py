"""API-key authentication: ``Authorization: Bearer <key>``. The key decides the tenant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils import timezone
from rest_framework import authentication, exceptions

from akplatform.lockout import lockout_failed, lockout_wait
from akplatform.recent import Recent
from sessions_app.models import ApiKey, Tenant

if TYPE_CHECKING:
    from rest_framework.request import Request

LAST_USED_RESOLUTION = timedelta(minutes=1)  # at most one write per key per minute


def _live_key(key_hash: str) -> ApiKey | None:
    try:
        return ApiKey.objects.select_related("tenant").get(key_hash=key_hash, revoked_at=None)
    except ApiKey.DoesNotExist:
        return None


#: The keys this process looked up in the last ``AK_API__KEY_CACHE_SECONDS`` (unknown ones too),
#: so that a client's requests cost no query each: a revoked key stops working within that time
#: in every process, at once in the one that revoked it.
_known_keys: Recent[ApiKey | None] = Recent(lambda: settings.AK_API["KEY_CACHE_SECONDS"])


def api_key_changed(sender: type[ApiKey], instance: ApiKey, **kwargs: object) -> None:
    """``post_save`` of an ApiKey (revoked): this process forgets it at once."""
    _known_keys.forget(instance.key_hash)


def tenant_changed(sender: type[Tenant], instance: Tenant, **kwargs: object) -> None:
    """``post_save`` of a Tenant (its limits changed in the admin): this process looks its keys,
    and so their tenants, up again; the others within ``AK_API__KEY_CACHE_SECONDS``."""
    _known_keys.clear()


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
            key_hash = ApiKey.hash(header[1].decode())
            key = _known_keys.get(key_hash, lambda: _live_key(key_hash))
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
