"""Per-tenant request rate (``AK_API__THROTTLE_RATE``, e.g. ``6000/min``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework.throttling import SimpleRateThrottle

from agents_app.api.authentication import TenantPrincipal

if TYPE_CHECKING:
    from rest_framework.request import Request
    from rest_framework.views import APIView


class TenantRateThrottle(SimpleRateThrottle):
    scope = "tenant"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        if not isinstance(request.user, TenantPrincipal):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.tenant.pk}
