"""Django's ``SecurityMiddleware`` without two thread hops per ASGI request, and its deploy checks.

Under ASGI, Django runs a ``MiddlewareMixin``'s ``process_request`` and ``process_response`` each
in a thread, in case they block. ``SecurityMiddleware``'s are header arithmetic (HSTS, nosniff,
referrer and opener policies, the HTTPS redirect), so this subclass runs them inline: the two
hops were a seventh of what answering a poll (``GET /runs/<id>``) cost.

Django's deploy checks of those settings (``security.W004``, ``W008``, ...) look for their
middleware by its dotted path; ``check_security_settings`` runs them for this one.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, register
from django.core.checks.security import base
from django.http import HttpRequest, HttpResponseBase
from django.middleware import security


class SecurityMiddleware(security.SecurityMiddleware):
    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.process_request(request)
        if response is None:
            response = await self.get_response(request)
        return self.process_response(request, response)


SETTINGS_CHECKS = (
    base.check_sts,
    base.check_sts_include_subdomains,
    base.check_sts_preload,
    base.check_content_type_nosniff,
    base.check_ssl_redirect,
    base.check_referrer_policy,
    base.check_cross_origin_opener_policy,
)


@register(Tags.security, deploy=True)
def check_security_settings(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """Django's checks of ``SecurityMiddleware``'s settings, run for this subclass (Django's
    ``security.W001``, "not in MIDDLEWARE", is silenced in the settings for it)."""
    if f"{__name__}.SecurityMiddleware" not in settings.MIDDLEWARE:
        return []
    from django.test.utils import override_settings  # only when checks run

    with override_settings(MIDDLEWARE=["django.middleware.security.SecurityMiddleware"]):
        return [message for check in SETTINGS_CHECKS for message in check(app_configs)]
