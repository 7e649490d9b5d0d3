"""Who may call the API: a request authenticated as a tenant."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework.permissions import BasePermission

from agents_app.api.authentication import TenantPrincipal

if TYPE_CHECKING:
    from rest_framework.request import Request
    from rest_framework.views import APIView


class IsTenant(BasePermission):
    def has_permission(self, request: Request, view: APIView) -> bool:
        return isinstance(request.user, TenantPrincipal)
