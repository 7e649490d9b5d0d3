"""``akplatform.sql``: the hot path's plain SQL reads and writes exactly what the ORM would."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.db.models import DateTimeField
from django.utils import timezone

from agents_app.models import Agent, Run
from akplatform import sql
from sessions_app.models import Session, Thread


@pytest.fixture
def session(alice) -> Session:
    thread = Thread.objects.create(tenant=alice.tenant, metadata={"topic": "ünïcode", "n": [1, 2]})
    return Session.objects.create(tenant=alice.tenant, thread=thread, session_id="s-1")


def test_fetch_reads_every_field_as_the_orm_does(alice, session):
    agent = Agent.objects.create(tenant=alice.tenant, name="cfg", framework="echo", config={"a": [1, {"b": None}]})
    made = Run.objects.create(
        tenant=alice.tenant, session=session, agent=agent, message="hi", started_at=timezone.now(), attempts=2
    )

    run = sql.fetch(Run, related=("agent", "session", "tenant"), id=str(made.pk))

    expected = Run.objects.select_related("agent", "session", "tenant").get(pk=made.pk)
    for field in Run._meta.concrete_fields:
        assert getattr(run, field.attname) == getattr(expected, field.attname), field.name
    assert isinstance(run.pk, uuid.UUID)
    assert run.agent.config == {"a": [1, {"b": None}]}  # JSON decoded
    assert run.started_at.tzinfo is not None  # aware, as the ORM returns it
    assert (run.session.session_id, run.tenant.slug) == ("s-1", alice.tenant.slug)
    assert run._state.adding is False
    with transaction.atomic():  # a fetched instance saves as an UPDATE, like any loaded one
        run.message = "edited"
        run.save(update_fields=["message"])
    assert Run.objects.get(pk=made.pk).message == "edited"


def test_fetch_only_reads_the_named_fields_and_defers_the_rest(alice, session, django_assert_num_queries):
    agent = Agent.objects.create(tenant=alice.tenant, name="cfg", framework="echo", config={"k": 1})
    made = Run.objects.create(tenant=alice.tenant, session=session, agent=agent, message="hi", result="r")

    with django_assert_num_queries(1):
        run = sql.fetch(
            Run, related=("agent", "session"), only=("message", "agent__config", "session__session_id"), id=made.pk
        )
        assert (run.message, run.agent.config, run.session.session_id) == ("hi", {"k": 1}, "s-1")
        assert (run.agent_id, run.session_id, run.agent.pk) == (agent.pk, session.pk, agent.pk)
    assert run.get_deferred_fields() >= {"result", "status", "created_at"}
    assert run.agent.get_deferred_fields() >= {"name", "framework"}
    with django_assert_num_queries(1):
        assert run.result == "r"  # a deferred field still reads, by a query of its own
    whole = sql.fetch(Run, related=("agent",), only=("message",), id=made.pk)
    assert not whole.agent.get_deferred_fields()  # a relation named in no field is read whole


def test_fetch_goes_through_init_when_something_listens_for_new_instances(alice, session):
    from django.db.models.signals import post_init

    made: list[tuple[str, bool]] = []

    def seen(sender, instance, **kwargs):
        made.append((instance.name, instance._state.adding))

    agent = Agent.objects.create(tenant=alice.tenant, name="heard", framework="echo")
    made.clear()
    post_init.connect(seen, sender=Agent)
    try:
        fetched = sql.fetch(Agent, id=agent.pk)
    finally:
        post_init.disconnect(seen, sender=Agent)
    assert made == [("heard", True)]  # from_db: __init__ first, then the state says "loaded"
    assert fetched._state.adding is False and fetched.name == "heard"
    assert sql.fetch(Agent, id=agent.pk) is not None and made == [("heard", True)]  # no listener: no call


def test_fetch_each_reads_unrelated_rows_in_one_query(alice, session, django_assert_num_queries):
    agent = Agent.objects.get(tenant=alice.tenant, name="echo")
    with django_assert_num_queries(1):
        found, missing, sess = sql.fetch_each(
            (Agent, {"tenant_id": alice.tenant.pk, "name": "echo"}),
            (Agent, {"tenant_id": alice.tenant.pk, "name": "nope"}),
            (Session, {"tenant_id": alice.tenant.pk, "session_id": "s-1"}),
        )
    assert (found.pk, found.config, missing, sess.pk, sess.session_id) == (
        agent.pk,
        agent.config,
        None,
        session.pk,
        "s-1",
    )
    assert sql.fetch_each((Session, {"tenant_id": alice.tenant.pk + 1, "session_id": "s-1"})) == [None]


def test_fetch_is_none_without_a_row_and_matches_every_condition(alice, session):
    assert sql.fetch(Session, tenant_id=alice.tenant.pk, session_id="nope") is None
    assert sql.fetch(Session, tenant_id=alice.tenant.pk + 1, session_id="s-1") is None
    assert sql.fetch(Session, tenant_id=alice.tenant.pk, session_id="s-1").pk == session.pk


def test_insert_sets_defaults_and_the_auto_key(alice):
    thread = sql.insert(Thread(tenant=alice.tenant, metadata={"k": "v"}))

    assert thread.pk is not None
    stored = Thread.objects.get(pk=thread.pk)
    assert (stored.metadata, stored.status, stored.tenant_id) == ({"k": "v"}, "active", alice.tenant.pk)
    assert abs(stored.created_at - timezone.now()) < timedelta(seconds=5)
    second = sql.insert(Thread(tenant=alice.tenant))
    assert second.pk > thread.pk


def test_insert_writes_a_run_as_the_orm_does(alice, session):
    agent = Agent.objects.create(tenant=alice.tenant, name="a", framework="echo")
    fields = {"tenant": alice.tenant, "session": session, "agent": agent, "message": "hi", "is_async": True}
    ours = sql.insert(Run(**fields, enqueued_at=timezone.now(), webhook_url="https://x.example/h", attempts=3))
    theirs = Run.objects.create(**fields, enqueued_at=ours.enqueued_at, webhook_url=ours.webhook_url, attempts=3)
    rows = Run.objects.filter(pk__in=[ours.pk, theirs.pk]).values()
    mine, orm = sorted(rows, key=lambda row: row["id"] != ours.pk)
    assert {k: v for k, v in mine.items() if k not in ("id", "created_at")} == {
        k: v for k, v in orm.items() if k not in ("id", "created_at")
    }
    assert mine["idempotency_key"] is None and mine["result"] is None and mine["started_at"] is None


def test_the_shortcuts_of_prep_give_what_the_fields_would():
    """``_prep`` skips ``get_db_prep_save`` for blanks, defaults and aware datetimes: it must
    give what the field would, for every field of every model (run on SQLite and PostgreSQL)."""
    from datetime import UTC, datetime
    from datetime import timezone as tz

    from django.apps import apps
    from django.db import connection

    aware = [datetime(2026, 11, 25, 21, 0, 1, 123456, tzinfo=UTC), datetime.now(tz(timedelta(hours=-5)))]
    samples = {str: ["", "text", "ünï"], bool: [True, False], type(None): [None], datetime: aware}
    checked = 0
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            kinds = [*sql._AS_IS.get(type(field), ()), *([datetime] if type(field) is DateTimeField else [])]
            for value in (v for kind in kinds for v in samples[kind]):
                ours, theirs = sql._prep(field, value), field.get_db_prep_save(value, connection)
                assert ours == theirs and type(ours) is type(theirs), (model, field.name, value)
                checked += 1
    assert checked > 100


def test_insert_looking_up_takes_foreign_keys_from_the_rows_named(alice, session, django_assert_num_queries):
    agent = Agent.objects.create(tenant=alice.tenant, name="a", framework="echo")
    run = Run(tenant=alice.tenant, message="hi", is_async=True)
    agent_by_name = (Agent, {"tenant_id": alice.tenant.pk, "name": "a"})
    with django_assert_num_queries(1):
        made = sql.insert_looking_up(
            run, agent=agent_by_name, session=(Session, {"tenant_id": alice.tenant.pk, "session_id": "s-1"})
        )
    assert made is run and (run.agent_id, run.session_id) == (agent.pk, session.pk) and not run._state.adding
    stored = Run.objects.get(pk=run.pk)
    assert (stored.agent_id, stored.session_id, stored.message, stored.is_async) == (agent.pk, session.pk, "hi", True)

    # One key naming no row: no row written, the instance untouched.
    missing = Run(tenant=alice.tenant, message="lost")
    absent = (Session, {"tenant_id": alice.tenant.pk, "session_id": "nope"})
    assert sql.insert_looking_up(missing, agent=agent_by_name, session=absent) is None
    assert missing._state.adding and missing.session_id is None
    assert not Run.objects.filter(message="lost").exists()


def test_loaded_is_a_row_known_in_part_whose_other_fields_read_on_demand(alice, session, django_assert_num_queries):
    partial = sql.loaded(Session, id=session.pk, tenant_id=alice.tenant.pk, session_id="s-1")
    assert not partial._state.adding and partial.get_deferred_fields() >= {"thread_id", "message_count"}
    with django_assert_num_queries(1):
        assert partial.thread_id == session.thread_id
    with pytest.raises(AssertionError):
        sql.loaded(Session, id=session.pk, nonsense=1)


def test_insert_raises_integrity_error_like_the_orm(alice, session):
    with pytest.raises(IntegrityError), transaction.atomic():
        sql.insert(Session(tenant=alice.tenant, thread=Thread.objects.create(tenant=alice.tenant), session_id="s-1"))
    assert Session.objects.filter(tenant=alice.tenant, session_id="s-1").count() == 1


def test_execute_returns_the_rows_changed(alice, session):
    changed = sql.execute(
        f"UPDATE {sql.table(Session)} SET message_count = %s WHERE id = %s", [7, sql.prep(Session, "id", session.pk)]
    )
    assert changed == 1
    assert Session.objects.get(pk=session.pk).message_count == 7
    assert sql.execute(f"UPDATE {sql.table(Session)} SET message_count = 1 WHERE id = %s", [session.pk + 99]) == 0


def test_update_returning_gives_the_row_as_updated_with_its_related_rows(alice, session):
    agent = Agent.objects.create(tenant=alice.tenant, name="cfg", framework="echo", config={"k": [1, None]})
    made = Run.objects.create(tenant=alice.tenant, session=session, agent=agent, message="hi", attempts=1)
    now = timezone.now()

    run = sql.update_returning(
        Run,
        "status = %s, started_at = %s, attempts = attempts + 1",
        ["running", sql.prep(Run, "started_at", now)],
        related=("agent", "session", "tenant"),
        id=str(made.pk),
        status="queued",
        cancel_requested_at__isnull=True,
    )

    expected = Run.objects.select_related("agent", "session", "tenant").get(pk=made.pk)
    assert (expected.status, expected.attempts, expected.started_at) == ("running", 2, now)
    for field in Run._meta.concrete_fields:
        assert getattr(run, field.attname) == getattr(expected, field.attname), field.name
    for name in ("agent", "session", "tenant"):
        for field in getattr(Run, name).field.related_model._meta.concrete_fields:
            assert getattr(getattr(run, name), field.attname) == getattr(getattr(expected, name), field.attname)
    assert run.agent.config == {"k": [1, None]}
    assert run.started_at.tzinfo is not None


def test_update_returning_changes_nothing_when_a_condition_fails(alice, session):
    agent = Agent.objects.create(tenant=alice.tenant, name="a", framework="echo")
    made = Run.objects.create(tenant=alice.tenant, session=session, agent=agent, message="hi")
    Run.objects.filter(pk=made.pk).update(cancel_requested_at=timezone.now())

    changed = sql.update_returning(
        Run, "status = %s", ["running"], id=str(made.pk), status="queued", cancel_requested_at__isnull=True
    )

    assert changed is None
    assert Run.objects.get(pk=made.pk).status == "queued"
    assert sql.fetch(Run, id=str(made.pk), cancel_requested_at__isnull=True) is None


def test_statements_are_seen_by_whatever_watches_queries(alice, session, django_assert_num_queries):
    with django_assert_num_queries(2) as captured:
        sql.fetch(Session, tenant_id=alice.tenant.pk, session_id="s-1")
        sql.execute(f"UPDATE {sql.table(Session)} SET message_count = 3 WHERE id = %s", [session.pk])
    assert "UPDATE" in captured.captured_queries[1]["sql"]
