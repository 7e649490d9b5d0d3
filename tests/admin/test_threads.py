"""The thread list and the thread page: find, read (from the store), export, clear, archive, delete."""

from __future__ import annotations

import json
import re

import pytest

from agents_app.models import Agent, Run
from sessions_app.core import Session as StoreSession
from sessions_app.models import Session, Thread
from sessions_app.selectors import session_key
from sessions_app.stores import get_store
from sessions_app.stores.base import SUMMARY, TOOL_CALL, TOOL_RESULT, Message

THREADS = "/admin/sessions_app/thread/"


def thread_url(session: Session, suffix: str = "change/") -> str:
    return f"{THREADS}{session.thread_id}/{suffix}"


def test_list_searches_by_user_session_title_and_metadata(staff_a, tenant_a, converse) -> None:
    a = converse(tenant_a, user_id="alice", session_id="sess-apple")
    b = converse(tenant_a, user_id="bob", session_id="sess-pear")
    Thread.objects.filter(pk=a.thread_id).update(title="Refund request")
    Thread.objects.filter(pk=b.thread_id).update(metadata={"channel": "whatsapp"})

    def found(q: str) -> list[int]:
        return [t.pk for t in staff_a.get(THREADS, {"q": q}).context["cl"].result_list]

    assert found("alice") == [a.thread_id]
    assert found("sess-pear") == [b.thread_id]
    assert found("refund") == [a.thread_id]
    assert found("whatsapp") == [b.thread_id]


def test_list_filters_by_agent_status_and_activity(staff_a, tenant_a, converse) -> None:
    Agent.objects.create(tenant=tenant_a, name="planner", framework="echo")
    by_echo = converse(tenant_a, turns=1)
    by_planner = converse(tenant_a, turns=1, agent="planner")
    Thread.objects.filter(pk=by_planner.thread_id).update(status="archived")
    planner = Agent.objects.get(tenant=tenant_a, name="planner")

    def found(**params: str) -> set[int]:
        return {t.pk for t in staff_a.get(THREADS, params).context["cl"].result_list}

    assert found(agent=str(planner.pk)) == {by_planner.thread_id}
    assert found(status__exact="archived") == {by_planner.thread_id}
    assert found(status__exact="active") == {by_echo.thread_id}
    assert found(**{"session__last_activity_at__gte": "2000-01-01T00:00:00+00:00"}) == {
        by_echo.thread_id,
        by_planner.thread_id,
    }
    assert found(**{"session__last_activity_at__lt": "2000-01-01T00:00:00+00:00"}) == set()


def test_list_shows_message_count_and_last_activity(staff_a, tenant_a, converse) -> None:
    converse(tenant_a, turns=3, session_id="three-turns")
    page = staff_a.get(THREADS)
    row = page.content.decode().split("three-turns")[1].split("</tr>")[0]
    assert '<td class="field-messages">6</td>' in row
    assert "field-last_activity" in row


def test_thread_page_renders_the_conversation_state_and_runs(staff_a, tenant_a, converse) -> None:
    session = converse(tenant_a, turns=2, user_id="alice")
    StoreSession(session.session_id, tenant=tenant_a.slug).set("profile", {"name": "Alice"})
    StoreSession(session.session_id, tenant=tenant_a.slug).set("mood", "calm", agent="echo")
    page = staff_a.get(thread_url(session))
    assert page.status_code == 200
    body = page.content.decode()
    assert body.count('class="message role-') == 4
    assert "hello 0" in body and "echo[turns=2]: hello 1" in body
    conversation = page.context["conversation"]
    assert [m.role for m in conversation.messages] == ["user", "assistant", "user", "assistant"]
    assert conversation.messages[1].agent == "echo"
    assert list(conversation.state) == ["_shared", "echo"]
    assert [(k.key, k.size) for k in conversation.state["_shared"]] == [("profile", len('{"name":"Alice"}'))]
    assert [(k.key, k.size) for k in conversation.state["echo"]] == [("mood", len('"calm"'))]
    assert len(page.context["thread_runs"]) == 2
    assert body.count('class="run"') == 2


def test_thread_page_shows_tool_calls_and_results_readably(staff_a, tenant_a, converse) -> None:
    session = converse(tenant_a, turns=1)
    items = [
        Message("user", "weather in Paris?", "helper"),
        Message("assistant", 'get_weather({"city": "Paris"})', "helper", kind=TOOL_CALL, data={"name": "get_weather"}),
        Message("tool", "18 °C <sunny>", "helper", kind=TOOL_RESULT, data={"call_id": "c1", "output": "18 °C"}),
        Message("assistant", "It is 18 °C.", "helper"),
    ]
    get_store().commit(session_key(session), expected_version=None, append=items)
    page = staff_a.get(thread_url(session)).content.decode()
    assert 'class="message role-assistant item kind-tool_call"' in page
    assert "get_weather({&quot;city&quot;: &quot;Paris&quot;})" in page  # escaped, readable
    assert "18 °C &lt;sunny&gt;" in page and "&quot;call_id&quot;: &quot;c1&quot;" in page
    assert '<span class="kind">tool_result</span>' in page


def test_thread_page_pages_through_a_long_history(staff_a, tenant_a, long_thread) -> None:
    session = long_thread(tenant_a, 120)
    first = staff_a.get(thread_url(session)).context["conversation"]
    assert (first.page, first.pages, first.total) == (1, 3, 120)
    assert [m.number for m in first.messages] == list(range(50))
    last = staff_a.get(thread_url(session), {"page": "3"}).context["conversation"]
    assert [m.content for m in last.messages] == [f"message number {i}" for i in range(100, 120)]
    assert last.page_numbers == {"first": 1, "previous": 2, "next": None, "last": None}
    assert staff_a.get(thread_url(session), {"page": "junk"}).context["conversation"].page == 1


def test_export_is_the_api_shape_plus_the_session(staff_a, tenant_a, converse, make_tenant) -> None:
    from rest_framework.test import APIClient

    from sessions_app.services import api_key_issue

    session = converse(tenant_a, turns=2, user_id="alice")
    Thread.objects.filter(pk=session.thread_id).update(metadata={"k": "v"}, title="T")
    answer = staff_a.get(thread_url(session, "export/"))
    assert answer.status_code == 200
    assert answer["Content-Disposition"] == f'attachment; filename="{session.session_id}.json"'
    exported = json.loads(answer.content)
    _, raw = api_key_issue(tenant=tenant_a)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    from_api = api.get(f"/sessions/{session.session_id}/messages", {"limit": 500}).json()["messages"]
    assert exported["messages"] == from_api
    assert exported["session_id"] == session.session_id
    assert exported["thread"]["metadata"] == {"k": "v"}
    assert exported["thread"]["user_id"] == "alice"
    assert exported["message_count"] == 4


def test_export_action_exports_every_selected_thread(staff_a, tenant_a, converse) -> None:
    one, two = converse(tenant_a, turns=1), converse(tenant_a, turns=2)
    answer = staff_a.post(THREADS, {"action": "export_json", "_selected_action": [one.thread_id, two.thread_id]})
    exported = json.loads(answer.content)
    assert sorted((t["session_id"], t["message_count"]) for t in exported) == sorted(
        [(one.session_id, 2), (two.session_id, 4)]
    )


def test_clear_history_empties_the_store_and_resets_the_counts(staff_a, tenant_a, converse) -> None:
    session = converse(tenant_a, turns=2)
    StoreSession(session.session_id, tenant=tenant_a.slug).set("profile", "x")
    confirm = staff_a.get(thread_url(session, "clear/"))
    assert b"Yes, clear it" in confirm.content
    assert get_store().load(session_key(session)).total == 4  # a GET changes nothing
    assert staff_a.post(thread_url(session, "clear/")).status_code == 302
    snapshot = get_store().load(session_key(session))
    assert not snapshot.exists and snapshot.total == 0 and snapshot.state["_shared"] == {}
    session.refresh_from_db()
    assert session.message_count == 0
    assert Thread.objects.filter(pk=session.thread_id).exists()
    assert Run.objects.filter(session=session).count() == 2


def test_archive_action(staff_a, tenant_a, converse) -> None:
    session = converse(tenant_a, turns=1)
    staff_a.post(THREADS, {"action": "archive", "_selected_action": [session.thread_id]})
    assert Thread.objects.get(pk=session.thread_id).status == "archived"


def test_delete_removes_the_thread_from_the_index_and_the_store(staff_a, tenant_a, converse) -> None:
    session = converse(tenant_a, turns=2)
    assert staff_a.post(thread_url(session, "delete/"), {"post": "yes"}).status_code == 302
    assert not Thread.objects.filter(pk=session.thread_id).exists()
    assert not Session.objects.filter(pk=session.pk).exists()
    assert not Run.objects.filter(session_id=session.pk).exists()
    assert not get_store().load(session_key(session)).exists


def test_delete_selected_goes_through_the_store_too(staff_a, tenant_a, converse) -> None:
    one, two = converse(tenant_a, turns=1), converse(tenant_a, turns=1)
    staff_a.post(
        THREADS, {"action": "delete_selected", "_selected_action": [one.thread_id, two.thread_id], "post": "yes"}
    )
    assert not Thread.objects.filter(pk__in=[one.thread_id, two.thread_id]).exists()
    assert not get_store().load(session_key(one)).exists and not get_store().load(session_key(two)).exists


def test_a_thread_of_10000_messages_opens_with_one_page(
    staff_a, tenant_a, long_thread, django_assert_max_num_queries
) -> None:
    session = long_thread(tenant_a, 10_000)
    with django_assert_max_num_queries(12):
        page = staff_a.get(thread_url(session))
    body = page.content.decode()
    assert len(re.findall(r'class="message role-', body)) == 50
    assert "message number 49<" in body and "message number 50<" not in body
    assert "10000 messages · page 1 of 200" in body
    last = staff_a.get(thread_url(session), {"page": "200"}).content.decode()
    assert "message number 9999<" in last and "message number 9949<" not in last


def test_thread_page_over_redis(staff_a, tenant_a, converse, make_store, use_store) -> None:
    use_store(make_store("redis"))
    session = converse(tenant_a, turns=3)
    StoreSession(session.session_id, tenant=tenant_a.slug).set("plan", [1, 2, 3], agent="echo")
    page = staff_a.get(thread_url(session))
    conversation = page.context["conversation"]
    assert conversation.total == 6 and not conversation.error
    assert [m.content for m in conversation.messages][-1] == "echo[turns=3]: hello 2"
    assert [(k.key, k.size) for k in conversation.state["echo"]] == [("plan", len("[1,2,3]"))]
    staff_a.post(thread_url(session, "delete/"), {"post": "yes"})
    assert not get_store().load(session_key(session)).exists


def test_thread_page_says_when_the_store_is_down(staff_a, tenant_a, converse, make_store, use_store) -> None:
    from tests import services

    session = converse(tenant_a, turns=1)
    use_store(make_store("redis", url=f"redis://127.0.0.1:{services.free_port()}/0"))
    page = staff_a.get(thread_url(session))
    assert page.status_code == 200
    assert "The session store did not answer" in page.content.decode()
    answer = staff_a.post(thread_url(session, "delete/"), {"post": "yes"})
    assert answer.status_code == 302
    assert Thread.objects.filter(pk=session.thread_id).exists()  # kept, to be deleted again later


@pytest.mark.parametrize("page", ["0", "-3", "99999"])
def test_out_of_range_pages_are_clamped(staff_a, tenant_a, long_thread, page: str) -> None:
    session = long_thread(tenant_a, 60)
    conversation = staff_a.get(thread_url(session), {"page": page}).context["conversation"]
    assert conversation.page in (1, 2) and conversation.messages


def test_deleting_a_session_row_deletes_it_from_the_store(staff_a, tenant_a, converse) -> None:
    session = converse(tenant_a, turns=2)
    answer = staff_a.post(f"/admin/sessions_app/session/{session.pk}/delete/", {"post": "yes"})
    assert answer.status_code == 302
    assert not Thread.objects.filter(pk=session.thread_id).exists()
    assert not get_store().load(session_key(session)).exists


def test_deleting_a_tenant_deletes_its_sessions_from_the_store(admin_client, tenant_a, tenant_b, converse) -> None:
    mine, theirs = converse(tenant_a, turns=1), converse(tenant_b, turns=1)
    confirm = admin_client.get(f"/admin/sessions_app/tenant/{tenant_a.pk}/delete/")
    assert f"{tenant_a.slug}: 1 sessions" in confirm.content.decode()
    assert admin_client.post(f"/admin/sessions_app/tenant/{tenant_a.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not get_store().load(session_key(mine)).exists
    assert get_store().load(session_key(theirs)).exists
    assert not Session.objects.filter(tenant_id=tenant_a.pk).exists()


def test_thread_page_shows_where_the_session_was_compacted(staff_a, tenant_a, converse) -> None:
    session = converse(tenant_a, turns=3)
    summary = Message(
        "system", "They said hello three times.", "summariser", kind=SUMMARY, data={"from": 0, "covers": 4}
    )
    get_store().commit(session_key(session), expected_version=None, append=[summary])
    page = staff_a.get(thread_url(session))
    shown = page.context["conversation"].messages
    assert [m.compacted for m in shown] == [None] * 6 + [(0, 3)]
    body = page.content.decode()
    assert body.count('<tr class="compacted">') == 1
    assert "Compacted here: summariser summarised entries 0 to 3" in body
    assert 'class="message role-system item kind-summary"' in body and "They said hello three times." in body
