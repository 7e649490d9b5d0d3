"""``ensure_demo``: the demo tenant, its API key and an admin login, for ``make run``.

The demo key is kept in ``<AK_VAR_DIR>/demo-api-key`` (owner-only, ``0600``), so every start
prints the same key; one missing from the file, revoked or deleted is replaced by a new one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from sessions_app.models import ApiKey, Tenant
from sessions_app.services import api_key_issue, tenant_create

DEMO_TENANT = "demo"
DEMO_KEY_NAME = "make run"
ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin"  # noqa: S105 - make run's printed development login, never a deployment's


def demo_key_ensure(*, tenant: Tenant, path: Path) -> tuple[str, bool]:
    """The demo key kept in ``path`` while it is an active key of ``tenant``; else a new one,
    written there (owner-only). Returns ``(raw key, whether it is new)``."""
    try:
        kept = path.read_text().strip()
    except FileNotFoundError:
        kept = ""
    if kept and ApiKey.objects.filter(tenant=tenant, key_hash=ApiKey.hash(kept), revoked_at__isnull=True).exists():
        path.chmod(0o600)  # a file copied in with wider rights is narrowed
        return kept, False
    _, raw = api_key_issue(tenant=tenant, name=DEMO_KEY_NAME)
    _write_private(path, raw + "\n")
    return raw, True


def _write_private(path: Path, text: str) -> None:
    """Replace ``path`` by a file with ``text`` that only its owner may read (made ``0600`` before
    anything is written to it, then renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask, and whatever a leftover file had
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(partial, path)


class Command(BaseCommand):
    help = (
        "Make sure the demo tenant, its API key (kept in var/demo-api-key, owner-only, reissued when revoked)"
        " and an admin login exist, and print them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--url", default="http://127.0.0.1:8000", help="where the server listens, for the printed links"
        )

    def handle(self, *args: Any, url: str, **options: Any) -> None:
        url = url.rstrip("/")
        tenant, _ = tenant_create(slug=DEMO_TENANT, name="Demo")
        path = Path(settings.VAR_DIR) / "demo-api-key"
        raw, new = demo_key_ensure(tenant=tenant, path=path)
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
                    f"key file:     {path} ({'new key' if new else 'the same key as before'}; owner-only)",
                    f"admin login:  {login}  at {url}/admin/",
                    f"try:  curl -s -X POST {url}/run -H 'Authorization: Bearer "
                    f'{raw}\' -H \'Content-Type: application/json\' -d \'{{"agent": "echo", "message": "hi"}}\'',
                ]
            )
        )
