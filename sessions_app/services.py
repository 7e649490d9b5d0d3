"""Writes to the index (and, for deletes, the store). Keyword-only, named <entity>_<action>."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Case, DateTimeField, F, Q, Value, When
from django.db.models.functions import Greatest
from django.utils import timezone

from sessions_app.core import new_session_id
from sessions_app.models import ApiKey, EndUser, Session, Tenant, Thread
from sessions_app.stores import get_store
from sessions_app.stores.base import SessionKey


def tenant_create(*, slug: str, name: str = "") -> tuple[Tenant, bool]:
    """Get or create the tenant, with its built-in agents. Returns (tenant, created)."""
    from agents_app.services import agent_ensure_builtins

    tenant, created = Tenant.objects.get_or_create(slug=slug, defaults={"name": name or slug})
    agent_ensure_builtins(tenant=tenant)
    return tenant, created


def api_key_issue(*, tenant: Tenant, name: str = "") -> tuple[ApiKey, str]:
    """Issue a new key. The raw key is returned once and never stored."""
    raw = ApiKey.generate()
    key = ApiKey.objects.create(tenant=tenant, name=name, prefix=raw[:10], key_hash=ApiKey.hash(raw))
    return key, raw


def api_key_revoke(*, api_key: ApiKey) -> None:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])


def end_user_get_or_create(*, tenant: Tenant, external_id: str) -> EndUser:
    user, _ = EndUser.objects.get_or_create(tenant=tenant, external_id=external_id)
    return user


def session_open(*, tenant: Tenant, session_id: str | None = None, user_id: str | None = None) -> Session:
    """The index row of ``session_id`` in ``tenant``, made (with its thread) if new."""
    session_id = session_id or new_session_id()
    user = end_user_get_or_create(tenant=tenant, external_id=user_id) if user_id else None
    existing = Session.objects.filter(tenant=tenant, session_id=session_id).first()
    if existing is None:
        try:
            with transaction.atomic():
                thread = Thread.objects.create(tenant=tenant, user=user)
                return Session.objects.create(tenant=tenant, thread=thread, session_id=session_id, user=user)
        except IntegrityError:  # made by a concurrent request
            existing = Session.objects.get(tenant=tenant, session_id=session_id)
    if user is not None and existing.user_id is None:
        Session.objects.filter(pk=existing.pk, user__isnull=True).update(user=user)
        Thread.objects.filter(pk=existing.thread_id, user__isnull=True).update(user=user)
        existing.user = user
    return existing


def session_record_commit(*, session: Session, total: int, at: datetime | None = None) -> None:
    """Bring the index row up to a commit the store made, in one UPDATE. Never moves counts or
    activity backwards (commits of concurrent runs may be recorded out of order)."""
    at = at or timezone.now()
    ttl = settings.AK_SESSION["TTL"]
    newer = Q(last_activity_at__lt=at)
    expires_at = at + timedelta(seconds=ttl) if ttl else None
    when = DateTimeField()
    Session.objects.filter(pk=session.pk).update(
        message_count=Greatest(F("message_count"), Value(total)),
        last_activity_at=Case(When(newer, then=Value(at, when)), default=F("last_activity_at"), output_field=when),
        expires_at=Case(When(newer, then=Value(expires_at, when)), default=F("expires_at"), output_field=when),
    )


def session_delete(*, session: Session) -> None:
    """Remove the session from the store, then from the index (with its thread and runs).

    Store first: if the store is down this raises ``StoreUnavailable`` and the index row stays,
    so the delete can simply be tried again.
    """
    get_store().delete(SessionKey(tenant=session.tenant.slug, session_id=session.session_id))
    session.thread.delete()  # cascades to the session row and its runs
