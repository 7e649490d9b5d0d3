"""``manage.py reseal_sessions SLUG``: encrypt a tenant's stored sessions again under the first key
of ``AK_SESSION__ENCRYPTION_KEY`` (after a rotation, before the old key is dropped), or encrypt the
plain ones a store kept from before the key was set. Runs go on meanwhile (``SessionStore.reseal``)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sessions_app.models import Session, Tenant
from sessions_app.stores import get_store
from sessions_app.stores.base import SessionKey, StoreError
from sessions_app.stores.sealing import sealer_from_settings


class Command(BaseCommand):
    help = "Encrypt a tenant's stored sessions again under the first key of AK_SESSION__ENCRYPTION_KEY."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("tenant", help="the tenant's slug")

    def handle(self, *args: Any, tenant: str, **options: Any) -> None:
        if not sealer_from_settings().enabled:
            raise CommandError("AK_SESSION__ENCRYPTION_KEY is not set: there is no key to encrypt with.")
        found = Tenant.objects.filter(slug=tenant).first()
        if found is None:
            raise CommandError(f"No tenant {tenant!r}.")
        store = get_store()
        if store.name == "in_memory":
            raise CommandError(
                "The in-memory store lives in the serving process, and goes with it: nothing to do here."
            )
        sessions = payloads = 0
        try:
            for session_id in Session.objects.filter(tenant=found).values_list("session_id", flat=True).iterator():
                payloads += store.reseal(SessionKey(tenant=found.slug, session_id=session_id))
                sessions += 1
        except StoreError as exc:
            raise CommandError(f"The session store failed after {sessions} sessions: {exc}") from exc
        self.stdout.write(f"{sessions} sessions of {found.slug}: {payloads} payloads encrypted again.")
