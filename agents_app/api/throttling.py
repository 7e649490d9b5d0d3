"""Per-tenant request rate (``AK_API__THROTTLE_RATE``, e.g. ``6000/min``), one cache round trip a request."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework.throttling import SimpleRateThrottle

from agents_app.api.authentication import TenantPrincipal
from infra.rate_window import window_count, window_wait

if TYPE_CHECKING:
    from rest_framework.request import Request
    from rest_framework.views import APIView


class TenantRateThrottle(SimpleRateThrottle):
    """At most ``num_requests`` per ``duration`` per tenant, in a window that opens with the first
    request (``infra.rate_window``), shared by every process through the cache."""

    scope = "tenant"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        if not isinstance(request.user, TenantPrincipal):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.tenant.pk}

    def allow_request(self, request: Request, view: APIView) -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        return window_count(self.key, self.duration) <= self.num_requests

    def wait(self) -> float:
        return window_wait(self.key, self.duration)
