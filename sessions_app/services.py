"""Writes to the index (and, for deletes, the store). Keyword-only, named <entity>_<action>."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.admin.models import DELETION, LogEntry
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from infra.limits import stored_limit_check
from sessions_app.core import new_session_id
from sessions_app.models import ApiKey, EndUser, Session, Tenant, Thread
from sessions_app.selectors import MessagePage, session_key, session_messages
from sessions_app.stores import get_store
from sessions_app.stores.base import SessionKey, StoreError

logger = logging.getLogger(__name__)


def tenant_create(*, slug: str, name: str = "") -> tuple[Tenant, bool]:
    """Get or create the tenant. Returns (tenant, created)."""
    return Tenant.objects.get_or_create(slug=slug, defaults={"name": name or slug})


def api_key_issue(*, tenant: Tenant, name: str = "") -> tuple[ApiKey, str]:
    """Issue a new key. The raw key is returned once and never stored."""
    raw = ApiKey.generate()
    key = ApiKey.objects.create(tenant=tenant, name=name, prefix=raw[:10], key_hash=ApiKey.hash(raw))
    return key, raw


def api_key_revoke(*, api_key: ApiKey) -> None:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])


def session_open(*, tenant: Tenant, session_id: str | None = None, user_id: str | None = None) -> Session:
    """The index row of ``session_id`` in ``tenant``, made (with its thread) if new; without a
    ``session_id``, a new session (no lookup: no row can have the id just made). A new one over
    the tenant's limit of sessions raises ``LimitReached``."""
    user = EndUser.objects.get_or_create(tenant=tenant, external_id=user_id)[0] if user_id else None
    if session_id is None:
        _sessions_limit_check(tenant=tenant)
        return _session_create(tenant=tenant, session_id=new_session_id(), user=user)
    try:
        existing = Session.objects.get(tenant=tenant, session_id=session_id)
    except Session.DoesNotExist:
        _sessions_limit_check(tenant=tenant)
        try:
            with transaction.atomic():  # a savepoint in a caller's transaction: left usable
                return _session_create(tenant=tenant, session_id=session_id, user=user)
        except IntegrityError:  # made by a concurrent request
            existing = Session.objects.get(tenant=tenant, session_id=session_id)
    existing.tenant = tenant  # the row's own tenant: spares the query its store key would make
    if user is not None and existing.user_id is None:
        Session.objects.filter(pk=existing.pk, user__isnull=True).update(user=user)
        Thread.objects.filter(pk=existing.thread_id, user__isnull=True).update(user=user)
        existing.user = user
    return existing


def _sessions_limit_check(*, tenant: Tenant) -> None:
    stored_limit_check(tenant=tenant, name="sessions", rows=Session.objects.filter(tenant=tenant))


def _session_create(*, tenant: Tenant, session_id: str, user: EndUser | None) -> Session:
    """The thread and the index row, in the caller's transaction (no savepoint) or one of their own."""
    with transaction.atomic(savepoint=False):
        thread = Thread.objects.create(tenant=tenant, user=user)
        return Session.objects.create(tenant=tenant, thread=thread, session_id=session_id, user=user)


def session_record_commit(*, session: Session, total: int) -> None:
    """Bring the index row up to a commit the store made, ``total`` messages in all. Never moves
    the row backwards: the commits of runs on a session are serialized by its lock, but may be
    recorded out of order, and the one with more messages is the later one."""
    now = timezone.now()
    ttl = settings.AK_SESSION["TTL"]
    expires_at = now + timedelta(seconds=ttl) if ttl else None
    Session.objects.filter(pk=session.pk, message_count__lt=total).update(
        message_count=total, last_activity_at=now, expires_at=expires_at
    )


def session_history_lost(*, session: Session, count: int) -> bool:
    """The store has no history for ``session`` while its index row counted ``count`` messages:
    the row follows the store (0 messages, no expiry) and a warning is logged. True when this
    call changed the row (False: it said 0 already)."""
    changed = Session.objects.filter(pk=session.pk, message_count__gt=0).update(message_count=0, expires_at=None)
    session.message_count, session.expires_at = 0, None
    if changed:
        logger.warning(
            "session %s: its history (%d messages) is no longer in the session store; the index now says 0",
            session.session_id,
            count,
        )
    return bool(changed)


def session_messages_read(*, session: Session, start: int = 0, limit: int = 50) -> MessagePage:
    """``session_messages``; when the store has no message at all for a session whose index row
    counts some, its history is gone (``session_history_lost``) and the index follows."""
    page = session_messages(session=session, start=start, limit=limit)
    if start == 0 and not page.messages and session.message_count > 0:
        session_history_lost(session=session, count=session.message_count)
    return page


def session_delete(*, session: Session) -> None:
    """Remove the session from the store, then from the index (with its thread and runs); if the
    store is down this raises ``StoreUnavailable`` and the index row stays, to be tried again."""
    get_store().delete(session_key(session))
    session.thread.delete()  # cascades to the session row and its runs


def session_purge_expired(*, limit: int = 500) -> int:
    """Delete up to ``limit`` sessions whose expiry passed, from the store and then the index (a
    store's own TTL reaches neither the index nor, on DynamoDB, the messages). A session the store
    cannot delete now stays for the next sweep. Returns how many went."""
    purged = 0
    expired = Session.objects.select_related("tenant", "thread").filter(expires_at__lt=timezone.now())
    for session in expired.order_by("expires_at")[:limit]:
        try:
            session_delete(session=session)
        except StoreError:
            continue
        purged += 1
    return purged


def tenant_delete(*, tenant: Tenant) -> None:
    """Delete every session of the tenant from the store, then the tenant and all its index rows."""
    store = get_store()
    for session_id in Session.objects.filter(tenant=tenant).values_list("session_id", flat=True).iterator():
        store.delete(SessionKey(tenant=tenant.slug, session_id=session_id))
    tenant.delete()


def session_clear(*, session: Session) -> None:
    """Empty the session: its history and state leave the store, its index counters go to zero;
    the session and its thread stay. Store first: if the store is down the index is unchanged."""
    get_store().delete(session_key(session))
    Session.objects.filter(pk=session.pk).update(message_count=0, expires_at=None)
    session.message_count, session.expires_at = 0, None


def thread_delete(*, thread: Thread) -> None:
    """Delete the thread from the store (through its session) and from the index."""
    session = Session.objects.select_related("tenant").filter(thread=thread).first()
    if session is not None:
        session_delete(session=session)
    else:
        thread.delete()


def thread_archive(*, threads: QuerySet[Thread]) -> int:
    """Mark the threads archived; returns how many changed. History stays in the store."""
    return threads.exclude(status=Thread.Status.ARCHIVED).update(status=Thread.Status.ARCHIVED)


def end_user_forget(*, user: EndUser, actor: Any) -> dict[str, int]:
    """Remove the user's sessions (with their runs), threads and the ``EndUser`` itself, each
    session from the store first, and log it (``LogEntry``) naming ``actor``. If the store is down
    this raises ``StoreUnavailable`` with only the sessions gone from the store gone from the
    index, so it can be run again. Returns the counts."""
    sessions = list(Session.objects.select_related("tenant", "thread").filter(Q(user=user) | Q(thread__user=user)))
    threads = Thread.objects.filter(Q(user=user) | Q(session__in=[s.pk for s in sessions]))
    counts = {
        "sessions": len(sessions),
        "threads": threads.count(),
        "runs": Session.objects.filter(pk__in=[s.pk for s in sessions]).aggregate(n=Count("runs"))["n"],
    }
    for session in sessions:
        session_delete(session=session)
    with transaction.atomic():
        threads.delete()
        LogEntry.objects.log_actions(
            user_id=actor.pk,
            queryset=[user],
            action_flag=DELETION,
            change_message=(
                f"Forgot end user {user.external_id!r} of tenant {user.tenant.slug}: "
                f"{counts['threads']} threads, {counts['sessions']} sessions and {counts['runs']} runs "
                "removed from the index and the store."
            ),
            single_object=True,
        )
        user.delete()
    return counts
