"""``add_tenant_staff USERNAME TENANT``: make a login an operator of one tenant in the admin."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from console.staff import tenant_staff_add
from sessions_app.models import Tenant


class Command(BaseCommand):
    help = (
        "Make USERNAME a staff operator of TENANT: the admin then shows them that tenant only. "
        "Creates the user if missing (with --password, or a generated password that is printed)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("tenant", help="the tenant's slug")
        parser.add_argument("--password", help="password of a new user (default: generated and printed)")

    def handle(self, *args: Any, username: str, tenant: str, password: str | None, **options: Any) -> None:
        found = Tenant.objects.filter(slug=tenant).first()
        if found is None:
            raise CommandError(f"no tenant {tenant!r}: create it first (python manage.py create_tenant {tenant})")
        users = get_user_model().objects
        user = users.filter(username=username).first()
        if user is None:
            generated = password is None
            password = password or secrets.token_urlsafe(12)
            user = users.create_user(username, password=password)
            self.stdout.write(f"created user {username}" + (f" with password {password}" if generated else ""))
        elif user.is_superuser:
            raise CommandError(f"{username} is a superuser: superusers see every tenant already")
        tenant_staff_add(user=user, tenant=found)
        self.stdout.write(f"{username} is now staff of tenant {found.slug}")
