"""``ensure_demo``: the demo tenant, a fresh API key and an admin login, for ``make run``."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from sessions_app.services import api_key_issue, tenant_create

DEMO_TENANT = "demo"
ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin"  # noqa: S105 - make run's printed development login, never a deployment's


class Command(BaseCommand):
    help = "Make sure the demo tenant, an API key for it and an admin login exist, and print them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--url", default="http://127.0.0.1:8000", help="where the server listens, for the printed links"
        )

    def handle(self, *args: Any, url: str, **options: Any) -> None:
        url = url.rstrip("/")
        tenant, _ = tenant_create(slug=DEMO_TENANT, name="Demo")
        _, raw = api_key_issue(tenant=tenant, name="make run")
        users = get_user_model().objects
        if not users.filter(username=ADMIN_USER).exists():
            users.create_superuser(ADMIN_USER, "admin@example.com", ADMIN_PASSWORD)
            login = f"{ADMIN_USER} / {ADMIN_PASSWORD}"
        else:
            login = f"{ADMIN_USER} (existing password)"
        self.stdout.write(
            "\n".join(
                [
                    f"demo tenant:  {tenant.slug}",
                    f"API key:      {raw}",
                    f"admin login:  {login}  at {url}/admin/",
                    f"try:  curl -s -X POST {url}/run -H 'Authorization: Bearer "
                    f'{raw}\' -H \'Content-Type: application/json\' -d \'{{"agent": "echo", "message": "hi"}}\'',
                ]
            )
        )
