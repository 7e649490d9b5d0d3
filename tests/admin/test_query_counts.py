"""Every list page, the home page and the thread page run a bounded number of queries.

Each page is measured with few rows and with many: the count must not grow, and stays under a
fixed bound (``django_assert_max_num_queries``).
"""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents_app.models import Agent, Run, Schedule, UsageDaily
from console.staff import tenant_staff_add
from sessions_app.models import EndUser, Session, Thread
from sessions_app.services import api_key_issue

PAGES = [
    "/admin/",
    "/admin/sessions_app/tenant/",
    "/admin/sessions_app/tenantstaff/",
    "/admin/sessions_app/apikey/",
    "/admin/sessions_app/enduser/",
    "/admin/sessions_app/thread/",
    "/admin/sessions_app/thread/?q=u-1",
    "/admin/sessions_app/thread/?status__exact=active",
    "/admin/sessions_app/session/",
    "/admin/agents_app/agent/",
    "/admin/agents_app/run/",
    "/admin/agents_app/run/?status__exact=failed",
    "/admin/agents_app/schedule/",
    "/admin/usage/",
]
STAFF_PAGES = [p for p in PAGES if "tenant" not in p]
MAX_QUERIES = 14


def add_rows(tenant, n: int) -> None:
    """``n`` of everything a list shows, straight into the index (no store needed for lists)."""
    from django.contrib.auth import get_user_model

    for i in range(n):
        tag = uuid.uuid4().hex[:8]
        user = EndUser.objects.create(tenant=tenant, external_id=f"u-{i}-{tag}")
        thread = Thread.objects.create(tenant=tenant, user=user, title=f"thread {tag}")
        session = Session.objects.create(tenant=tenant, thread=thread, session_id=f"s-{tag}", user=user)
        agent = Agent.objects.create(tenant=tenant, name=f"agent-{tag}", framework="echo")
        status = "failed" if i % 2 else "succeeded"
        Run.objects.create(tenant=tenant, session=session, agent=agent, message="m", status=status, error="e")
        Schedule.objects.create(tenant=tenant, agent=agent, message="m", cron="* * * * *")
        UsageDaily.objects.create(
            tenant=tenant,
            day=timezone.now().date(),
            agent=agent.name,
            session_id=session.session_id,
            model=f"m-{i}",
            runs=1,
        )
        api_key_issue(tenant=tenant, name=tag)
        tenant_staff_add(user=get_user_model().objects.create_user(f"op-{tag}"), tenant=tenant)


def count_queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


@pytest.mark.parametrize("url", PAGES)
def test_superuser_pages_are_bounded(admin_client, make_tenant_row, url, django_assert_max_num_queries) -> None:
    tenant = make_tenant_row()
    add_rows(tenant, 2)
    admin_client.get(url)  # warms the process caches (content types), so that both measures compare
    few = count_queries(admin_client, url)
    add_rows(tenant, 30)
    add_rows(make_tenant_row(), 5)
    with django_assert_max_num_queries(MAX_QUERIES):
        many = count_queries(admin_client, url)
    assert many == few, f"{url}: {few} queries with few rows, {many} with many"


@pytest.mark.parametrize("url", STAFF_PAGES)
def test_staff_pages_are_bounded(make_staff, make_tenant_row, url, django_assert_max_num_queries) -> None:
    tenant = make_tenant_row()
    staff = make_staff(tenant)
    add_rows(tenant, 2)
    staff.get(url)  # warms the process caches (content types), so that both measures compare
    few = count_queries(staff, url)
    add_rows(tenant, 30)
    with django_assert_max_num_queries(MAX_QUERIES):
        many = count_queries(staff, url)
    assert many == few, f"{url}: {few} queries with few rows, {many} with many"


def test_thread_page_is_bounded(staff_a, tenant_a, converse, django_assert_max_num_queries) -> None:
    from tests.admin.conftest import failed_run

    session = converse(tenant_a, turns=1)
    url = f"/admin/sessions_app/thread/{session.thread_id}/change/"
    staff_a.get(url)  # warms the process caches (content types), so that both measures compare
    few = count_queries(staff_a, url)
    for i in range(40):
        Agent.objects.create(tenant=tenant_a, name=f"a{i}", framework="echo")
        failed_run(tenant_a, session)
    converse(tenant_a, turns=5, session_id=session.session_id)
    with django_assert_max_num_queries(MAX_QUERIES):
        many = count_queries(staff_a, url)
    assert many == few, f"{few} queries with one run, {many} with 41"
