"""Cancel and retry, as the API and the admin ask for them."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from agents_app.models import Run
from agents_app.pauses import pause_forget
from agents_app.runs import dispatch, transitions
from agents_app.runs.publish_new import publish_or_fail
from agents_app.usage.record import model_of
from sessions_app.selectors import session_key
from sessions_app.stores import get_store
from sessions_app.stores.base import SessionKey, StoreUnavailable

logger = logging.getLogger(__name__)


def run_cancel(*, run: Run) -> Run:
    """Cancel a run: a queued one never starts; a paused one ends (what it committed before it
    paused stays); a running one stops at its adapter's next ``await`` and commits nothing (over a
    store that can revoke, even before the watcher's next beat); a run that committed first ends
    ``succeeded``. A finished run stays as it was. A running run is returned as the cancel found
    it (``running``, its ``cancel_requested_at`` set), even when its process has stopped it by the
    time this returns: the API answers what the cancel did, not how fast the process was."""
    if run.status == Run.Status.PAUSED and run_cancel_paused(run=run, error="cancelled while paused"):
        run.refresh_from_db()
        return run
    Run.objects.filter(
        pk=run.pk, status__in=[Run.Status.QUEUED, Run.Status.RUNNING], cancel_requested_at__isnull=True
    ).update(cancel_requested_at=timezone.now())
    run.refresh_from_db()
    if run.status == Run.Status.QUEUED:
        if transitions.cancel_queued(run) and run.resumes:  # a queued resume: its pause marker goes too
            pause_forget(get_store(), session_key(run.session), str(run.pk))
        run.refresh_from_db()  # cancelled, or taken by a worker meanwhile (then running, asked to stop)
    elif run.status == Run.Status.RUNNING and get_store().can_revoke:
        try:
            get_store().revoke(session_key(run.session), run.commit_id)
        except StoreUnavailable:  # the watcher's next beat still sees the request
            logger.warning("run %s: could not revoke it in the store", run.pk)
    return run


def run_cancel_paused(*, run: Run, error: str) -> bool:
    """``paused → cancelled``, then its pause marker cleared from the session's store (a store that
    fails leaves it for the next run to find stale). False when it was not paused any more."""
    if not transitions.cancel_paused(run, error=error):
        return False
    session = Run.objects.filter(pk=run.pk).values_list("tenant__slug", "session__session_id").first()
    if session is not None:
        pause_forget(get_store(), SessionKey(tenant=session[0], session_id=session[1]), str(run.pk))
    return True


def run_retry(*, run: Run) -> Run:
    """A new async run of a finished run's agent, session and message (the old one stays)."""
    if not run.is_finished:
        raise ValueError("only a finished run can be retried")
    with transaction.atomic():
        retry = Run.objects.create(
            tenant=run.tenant,
            session=run.session,
            agent=run.agent,
            model=model_of(run.agent.config),
            message=run.message,
            is_async=True,
            enqueued_at=timezone.now(),
            held=dispatch.held_for(run.tenant),
            webhook_url=run.webhook_url,
            webhook_status=Run.Webhook.PENDING if run.webhook_url else Run.Webhook.NONE,
        )
        dispatch.queued_on_commit(retry, lambda: publish_or_fail(retry))
    return retry
