"""Factories for the console's tests: tenants with conversations, and logged-in operators.

The database is transactional: conversations go through the real run path, whose database calls
run in the I/O threads of ``infra.io_threads`` on connections of their own."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from agents_app.models import Agent, Run
from agents_app.runs.submit import RunRequest, run_submit
from console.staff import tenant_staff_add
from sessions_app.models import Session, Tenant
from sessions_app.selectors import session_key
from sessions_app.services import session_open, session_record_commit, tenant_create
from sessions_app.stores import get_store
from sessions_app.stores.base import Message


@pytest.fixture
def make_tenant_row(transactional_db: None) -> Callable[..., Tenant]:
    def make(slug: str | None = None) -> Tenant:
        tenant, _ = tenant_create(slug=slug or f"t{uuid.uuid4().hex[:12]}")
        return tenant

    return make


@pytest.fixture
def tenant_a(make_tenant_row: Callable[..., Tenant]) -> Tenant:
    return make_tenant_row()


@pytest.fixture
def tenant_b(make_tenant_row: Callable[..., Tenant]) -> Tenant:
    return make_tenant_row()


@pytest.fixture
def make_staff(transactional_db: None) -> Callable[..., Client]:
    """A logged-in staff user of ``tenant`` (or of none), made as the README says."""

    def make(tenant: Tenant | None, username: str | None = None) -> Client:
        user = get_user_model().objects.create_user(username or f"op-{uuid.uuid4().hex[:8]}", password="pw-123456")
        if tenant is not None:
            tenant_staff_add(user=user, tenant=tenant)
        else:
            user.is_staff = True
            user.save()
        client = Client()
        client.force_login(user)
        client.user = user
        return client

    return make


@pytest.fixture
def staff_a(make_staff: Callable[..., Client], tenant_a: Tenant) -> Client:
    return make_staff(tenant_a)


@pytest.fixture
def converse(transactional_db: None) -> Callable[..., Session]:
    """Run ``turns`` messages through the echo agent (the real run path): returns the session."""

    def talk(tenant: Tenant, *, user_id: str = "alice", turns: int = 2, session_id: str | None = None, agent="echo"):
        session_id = session_id or f"s-{uuid.uuid4().hex[:10]}"
        for i in range(turns):
            asyncio.run(
                run_submit(RunRequest(agent, f"hello {i}", session_id=session_id, user_id=user_id), tenant=tenant)
            )
        return Session.objects.select_related("tenant", "thread").get(tenant=tenant, session_id=session_id)

    return talk


@pytest.fixture
def long_thread(transactional_db: None) -> Callable[..., Session]:
    """A session of ``n`` messages written straight to the store (one commit), indexed."""

    def make(tenant: Tenant, n: int, *, user_id: str = "bob") -> Session:
        session = session_open(tenant=tenant, session_id=f"long-{uuid.uuid4().hex[:8]}", user_id=user_id)
        rows = [Message("user" if i % 2 == 0 else "assistant", f"message number {i}", "echo") for i in range(n)]
        result = get_store().commit(session_key(session), expected_version=None, append=rows)
        session_record_commit(session=session, total=result.total)
        return Session.objects.select_related("tenant", "thread").get(pk=session.pk)

    return make


def failed_run(tenant: Tenant, session: Session, error: str = "boom") -> Run:
    agent = Agent.objects.get(tenant=tenant, name="echo")
    return Run.objects.create(tenant=tenant, session=session, agent=agent, message="x", status="failed", error=error)
