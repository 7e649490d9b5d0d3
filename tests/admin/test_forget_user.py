"""'Forget this user': a confirmation page, then every thread, session and run goes, with an audit entry."""

from __future__ import annotations

from django.contrib.admin.models import DELETION, LogEntry

from agents_app.models import Run
from sessions_app.models import EndUser, Session, Thread
from sessions_app.selectors import session_key
from sessions_app.stores import get_store

USERS = "/admin/sessions_app/enduser/"


def test_forget_asks_first_then_removes_everything(staff_a, tenant_a, converse) -> None:
    first = converse(tenant_a, user_id="carol", turns=2)
    second = converse(tenant_a, user_id="carol", turns=1)
    other = converse(tenant_a, user_id="dave", turns=1)
    carol = EndUser.objects.get(tenant=tenant_a, external_id="carol")

    confirm = staff_a.get(f"{USERS}{carol.pk}/forget/")
    assert confirm.status_code == 200
    assert "carol: 2 sessions, 3 runs" in confirm.content.decode()
    assert EndUser.objects.filter(pk=carol.pk).exists()

    done = staff_a.post(f"{USERS}{carol.pk}/forget/", {"confirm": "yes"})
    assert done.status_code == 302
    assert not EndUser.objects.filter(pk=carol.pk).exists()
    for session in (first, second):
        assert not Session.objects.filter(pk=session.pk).exists()
        assert not Thread.objects.filter(pk=session.thread_id).exists()
        assert not Run.objects.filter(session_id=session.pk).exists()
        assert not get_store().load(session_key(session)).exists
    assert get_store().load(session_key(other)).total == 2
    entry = LogEntry.objects.get(object_id=str(carol.pk), content_type__model="enduser")
    assert entry.action_flag == DELETION and entry.user_id == staff_a.user.pk
    assert "carol" in entry.change_message and "2 threads, 2 sessions and 3 runs" in entry.change_message


def test_forget_action_on_the_list_goes_through_the_same_confirmation(staff_a, tenant_a, converse) -> None:
    converse(tenant_a, user_id="erin", turns=1)
    converse(tenant_a, user_id="frank", turns=1)
    ids = list(EndUser.objects.filter(tenant=tenant_a).values_list("pk", flat=True))
    confirm = staff_a.post(USERS, {"action": "forget", "_selected_action": ids})
    assert confirm.status_code == 200 and b"confirm-forget" in confirm.content
    assert EndUser.objects.filter(tenant=tenant_a).count() == 2
    staff_a.post(USERS, {"action": "forget", "_selected_action": ids, "confirm": "yes"})
    assert not EndUser.objects.filter(tenant=tenant_a).exists()
    assert not Thread.objects.filter(tenant=tenant_a).exists()
    assert LogEntry.objects.filter(content_type__model="enduser", action_flag=DELETION).count() == 2


def test_thread_page_links_to_forget_its_user(staff_a, tenant_a, converse) -> None:
    session = converse(tenant_a, user_id="gina", turns=1)
    page = staff_a.get(f"/admin/sessions_app/thread/{session.thread_id}/change/").content.decode()
    assert f"{USERS}{session.user_id}/forget/" in page
