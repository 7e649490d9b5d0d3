"""``create_tenant SLUG [--name NAME]``: make the tenant if new and issue a new API key.

The key, alone, is the last line of stdout.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from sessions_app.models import slug_validator
from sessions_app.services import api_key_issue, tenant_create


class Command(BaseCommand):
    help = "Create a tenant if it does not exist and issue a new API key for it (printed last, alone)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="lowercase letters, digits and hyphens")
        parser.add_argument("--name", default="", help="a display name (default: the slug)")

    def handle(self, *args: Any, slug: str, name: str, **options: Any) -> None:
        try:
            slug_validator(slug)
        except ValidationError as exc:
            raise CommandError(f"invalid slug {slug!r}: {' '.join(exc.messages)}") from None
        tenant, created = tenant_create(slug=slug, name=name)
        _, raw = api_key_issue(tenant=tenant, name="create_tenant")
        self.stdout.write(f"{'created' if created else 'existing'} tenant {tenant.slug}")
        self.stdout.write(f"webhook secret (signs this tenant's webhooks): {tenant.webhook_secret}")
        self.stdout.write("new API key:")
        self.stdout.write(raw)
