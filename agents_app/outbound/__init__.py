"""Requests the platform sends on a tenant's behalf (webhooks, model servers), to public addresses only.

Every request resolves its host once, refuses unless every address it resolves to is public
(``addresses``), and connects to the address it checked, with the URL's host in the ``Host``
header and as TLS's server name and certificate name. Redirects are not followed, answers are
capped, and every step has a timeout. ``post`` is a blocking POST for webhooks;
``guarded_client`` an ``httpx.AsyncClient`` for model servers; ``shared_client(tenant)`` a
tenant's client on the running loop, its calls under way capped per tenant.
"""

from agents_app.outbound.addresses import Refused, refusal, resolve, validate_webhook_url
from agents_app.outbound.post import MAX_ANSWER_BYTES, post, post_to
from agents_app.outbound.tenants import MAX_TENANT_CLIENTS, shared_client
from agents_app.outbound.transport import MAX_MODEL_ANSWER_BYTES, guarded_client

__all__ = [
    "MAX_ANSWER_BYTES",
    "MAX_MODEL_ANSWER_BYTES",
    "MAX_TENANT_CLIENTS",
    "Refused",
    "guarded_client",
    "post",
    "post_to",
    "refusal",
    "resolve",
    "shared_client",
    "validate_webhook_url",
]
