"""Reads of the index and the store, always scoped to a tenant."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from django.http import Http404

from sessions_app.models import Session, Tenant
from sessions_app.stores import get_store
from sessions_app.stores.base import Message, SessionKey


def session_get(*, tenant: Tenant, session_id: str) -> Session:
    """The tenant's session, or ``Http404`` (also when another tenant has that id)."""
    try:
        return Session.objects.select_related("tenant", "thread").get(tenant=tenant, session_id=session_id)
    except Session.DoesNotExist:
        raise Http404("unknown session") from None


def session_key(session: Session) -> SessionKey:
    return SessionKey(tenant=session.tenant.slug, session_id=session.session_id)


@dataclass(frozen=True)
class MessagePage:
    messages: list[Message]
    next_start: int | None


def session_messages(*, session: Session, start: int = 0, limit: int = 50) -> MessagePage:
    """One page of the history, oldest first, read from the store."""
    rows = get_store().history(session_key(session), start=start, limit=limit + 1)
    more = len(rows) > limit
    return MessagePage(messages=rows[:limit], next_start=start + limit if more else None)


def session_all_messages(*, session: Session, chunk: int = 500) -> Iterator[Message]:
    """The whole history, oldest first, read from the store ``chunk`` messages at a time."""
    start = 0
    while True:
        rows = get_store().history(session_key(session), start=start, limit=chunk)
        yield from rows
        if len(rows) < chunk:
            return
        start += chunk
