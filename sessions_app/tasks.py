"""Celery tasks of the index: each calls a service."""

from __future__ import annotations

from celery import shared_task

from sessions_app.services import session_purge_expired


@shared_task(name="sessions_app.tasks.purge_expired_sessions")
def purge_expired_sessions() -> int:
    """Periodic (celery beat): expired sessions leave the store and the index."""
    return session_purge_expired()
