"""Threads in the console: find them, read them from the store, export, clear, archive, delete."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.contrib import admin, messages
from django.db.models import Exists, OuterRef, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from agents_app.models import Agent, Run
from sessions_app.admin_scoping import TenantRelatedFilter, TenantScopedAdmin, request_scope
from sessions_app.models import Session, Thread
from sessions_app.selectors import session_all_messages, session_key, session_messages
from sessions_app.serializers import MessageOutput
from sessions_app.services import session_clear, session_history_lost, thread_archive, thread_delete
from sessions_app.stores import get_store
from sessions_app.stores.base import SHARED_SCOPE, SUMMARY, Message, StoreError, dumps

MESSAGES_PER_PAGE = 50
RUNS_SHOWN = 20


def thread_export(*, thread: Thread) -> dict[str, Any]:
    """The thread as JSON: its session id, metadata and every message, as the API shows them
    (``GET /sessions/<id>/messages``)."""
    session = getattr(thread, "session", None)
    messages_ = [] if session is None else [MessageOutput(m).data for m in session_all_messages(session=session)]
    return {
        "session_id": session.session_id if session else None,
        "thread": {
            "title": thread.title,
            "status": thread.status,
            "user_id": thread.user.external_id if thread.user else None,
            "metadata": thread.metadata,
            "created_at": thread.created_at.isoformat(),
        },
        "tenant": thread.tenant.slug,
        "message_count": len(messages_),
        "messages": messages_,
    }


@dataclass
class ShownMessage:
    number: int
    role: str
    agent: str
    content: str
    at: datetime
    kind: str = "message"
    #: An item's data (a tool call's arguments, a result's output), as indented JSON.
    details: str = ""
    #: A summary's (the session was compacted here): the numbers of the first and the last
    #: entries it covers.
    compacted: tuple[int, int] | None = None

    @classmethod
    def of(cls, number: int, message: Message) -> ShownMessage:
        at = datetime.fromtimestamp(message.created_at, tz=UTC)
        details = "" if message.is_text else json.dumps(message.data, ensure_ascii=False, indent=2)
        compacted = None
        data = message.data or {}
        if message.kind == SUMMARY and isinstance(data.get("from"), int) and isinstance(data.get("covers"), int):
            compacted = (data["from"], data["covers"] - 1)
        return cls(number, message.role, message.agent, message.content, at, message.kind, details, compacted)


@dataclass
class StateKey:
    key: str
    size: int
    preview: str


@dataclass
class ThreadConversation:
    """What the thread page shows of the store: one page of messages and the state's keys."""

    page: int = 1
    pages: int = 1
    total: int = 0
    messages: list[ShownMessage] = field(default_factory=list)
    state: dict[str, list[StateKey]] = field(default_factory=dict)
    error: str = ""
    #: The messages the index counted for a session whose history is no longer in the store.
    lost: int = 0

    @property
    def page_numbers(self) -> dict[str, int | None]:
        return {
            "first": 1 if self.page > 1 else None,
            "previous": self.page - 1 if self.page > 1 else None,
            "next": self.page + 1 if self.page < self.pages else None,
            "last": self.pages if self.page < self.pages else None,
        }


def thread_conversation(*, session: Session, page: int, scopes: list[str]) -> ThreadConversation:
    """Read one page of ``session``'s history and its state keys per scope: two store calls.

    A session the store does not have while its index row counts messages has lost its history
    (``session_history_lost``): the index follows the store, and ``lost`` says how many there were."""
    conversation = ThreadConversation(page=max(page, 1))
    store = get_store()
    try:
        snapshot = store.load(session_key(session), scopes=scopes, window=0)
        if not snapshot.exists and session.message_count > 0:
            conversation.lost = session.message_count
            session_history_lost(session=session, count=conversation.lost)
        conversation.total = snapshot.total
        conversation.pages = max(1, -(-snapshot.total // MESSAGES_PER_PAGE))
        conversation.page = min(conversation.page, conversation.pages)
        start = (conversation.page - 1) * MESSAGES_PER_PAGE
        rows = session_messages(session=session, start=start, limit=MESSAGES_PER_PAGE).messages
    except StoreError as exc:
        conversation.error = f"The session store did not answer: {exc}"
        return conversation
    conversation.messages = [ShownMessage.of(start + i, m) for i, m in enumerate(rows)]
    for scope in scopes:
        keys = []
        for key, value in sorted(snapshot.state.get(scope, {}).items()):
            encoded = dumps(value)
            keys.append(StateKey(key=key, size=len(encoded.encode()), preview=encoded[:120]))
        conversation.state[scope] = keys
    return conversation


def json_download(body: Any, *, name: str) -> HttpResponse:
    """``body`` as an indented JSON file, ``<name>.json``."""
    response = HttpResponse(json.dumps(body, ensure_ascii=False, indent=2), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{name}.json"'
    return response


class ThreadAgentFilter(admin.SimpleListFilter):
    """Threads on which an agent of the tenant ran."""

    title = "agent"
    parameter_name = "agent"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        scope = request_scope(request)
        agents = Agent.objects.filter(scope.q("tenant")).select_related("tenant").order_by("name", "tenant__slug")
        if scope.everything:
            return [(str(a.pk), f"{a.name} ({a.tenant.slug})") for a in agents]
        return [(str(a.pk), a.name) for a in agents]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if not self.value():
            return queryset
        try:
            agent_id = int(self.value())
        except ValueError:
            return queryset.none()
        return queryset.filter(Exists(Run.objects.filter(session__thread=OuterRef("pk"), agent_id=agent_id)))


@admin.register(Thread)
class ThreadAdmin(TenantScopedAdmin):
    list_display = ["thread", "tenant", "user", "session_id", "status", "messages", "last_activity"]
    list_filter = [
        ThreadAgentFilter,
        "status",
        ("session__last_activity_at", admin.DateFieldListFilter),
        ("tenant", TenantRelatedFilter),
    ]
    search_fields = ["user__external_id", "session__session_id", "title", "metadata"]
    autocomplete_fields = ["user"]
    readonly_fields = ["created_at"]
    actions = ["export_json", "archive", "clear_history", "delete_selected"]
    list_per_page = 50
    change_form_template = "admin/console/thread/change_form.html"

    @admin.display(description="thread", ordering="title")
    def thread(self, obj: Thread) -> str:
        return obj.title or f"thread {obj.pk}"

    @admin.display(description="session id", ordering="session__session_id")
    def session_id(self, obj: Thread) -> str:
        return getattr(getattr(obj, "session", None), "session_id", "—")

    @admin.display(description="messages", ordering="session__message_count")
    def messages(self, obj: Thread) -> int:
        return getattr(getattr(obj, "session", None), "message_count", 0)

    @admin.display(description="last activity", ordering="session__last_activity_at")
    def last_activity(self, obj: Thread) -> datetime | None:
        return getattr(getattr(obj, "session", None), "last_activity_at", None)

    def get_urls(self) -> list:
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/export/", wrap(self.export_view), name="sessions_app_thread_export"),
            path("<path:object_id>/clear/", wrap(self.clear_view), name="sessions_app_thread_clear"),
            *super().get_urls(),
        ]

    def _thread(self, request: HttpRequest, object_id: str, allowed: Any) -> Thread:
        """The thread, if ``allowed(request, thread)``; else 404."""
        thread = self.get_object(request, object_id)
        if thread is None or not allowed(request, thread):
            raise Http404("not found")
        return thread

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("tenant", "user", "session")

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        thread = self.get_object(request, object_id)
        context = dict(extra_context or {})
        session = getattr(thread, "session", None) if thread else None
        if session is not None:
            try:
                page = int(request.GET.get("page", "1"))
            except ValueError:
                page = 1
            ran = list(Agent.objects.filter(runs__session=session).order_by("name").values_list("name", flat=True))
            scopes = [SHARED_SCOPE, *dict.fromkeys(ran)]
            runs = Run.objects.filter(session=session).select_related("agent").order_by("-created_at")
            context.update(
                conversation=thread_conversation(session=session, page=page, scopes=scopes),
                thread_session=session,
                thread_runs=list(runs[:RUNS_SHOWN]),
                thread_runs_shown=RUNS_SHOWN,
                runs_url=reverse("admin:agents_app_run_changelist") + f"?q={session.session_id}",
            )
        if thread is not None and thread.user_id:
            context["forget_url"] = reverse("admin:sessions_app_enduser_forget", args=[thread.user_id])
        return super().change_view(request, object_id, form_url, context)

    def export_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        thread = self._thread(request, object_id, self.has_view_permission)
        try:
            body = thread_export(thread=thread)
        except StoreError as exc:
            return HttpResponse(f"The session store did not answer: {exc}", status=503, content_type="text/plain")
        return json_download(body, name=body["session_id"] or f"thread-{thread.pk}")

    def clear_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        thread = self._thread(request, object_id, self.has_change_permission)
        change_url = reverse("admin:sessions_app_thread_change", args=[thread.pk])
        session = getattr(thread, "session", None)
        if request.method == "POST" and session is not None:
            try:
                session_clear(session=session)
            except StoreError as exc:
                self.message_user(request, f"Not cleared: the session store did not answer ({exc}).", messages.ERROR)
            else:
                self.log_change(request, thread, "Cleared the history and state of the session.")
                self.message_user(request, f"Cleared the history of {thread}.", messages.SUCCESS)
            return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "thread": thread,
            "session": session,
            "change_url": change_url,
            "title": "Clear the history?",
        }
        return TemplateResponse(request, "admin/console/thread/clear_confirmation.html", context)

    @admin.action(description="Export selected threads as JSON", permissions=["view"])
    def export_json(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        try:
            body = [thread_export(thread=t) for t in queryset]
        except StoreError as exc:
            self.message_user(request, f"Not exported: the session store did not answer ({exc}).", messages.ERROR)
            return None
        return json_download(body, name=f"threads-{timezone.now():%Y%m%d-%H%M%S}")

    @admin.action(description="Archive selected threads", permissions=["change"])
    def archive(self, request: HttpRequest, queryset: QuerySet) -> None:
        changed = thread_archive(threads=queryset)
        self.message_user(request, f"Archived {changed} thread(s).", messages.SUCCESS)

    @admin.action(description="Clear the history of selected threads", permissions=["change"])
    def clear_history(self, request: HttpRequest, queryset: QuerySet) -> None:
        sessions = Session.objects.select_related("tenant").filter(thread__in=queryset)
        cleared = 0
        try:
            for session in sessions:
                session_clear(session=session)
                cleared += 1
        except StoreError as exc:
            self.message_user(request, f"The session store did not answer ({exc}).", messages.ERROR)
        self.message_user(request, f"Cleared the history of {cleared} thread(s).", messages.SUCCESS)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple[list, dict, set, list]:
        """Each thread and a count of what goes with it, not every cascaded row (``thread_delete``
        owns the cascade)."""
        threads = list(objs)
        ids = [t.pk for t in threads]
        n_sessions = Session.objects.filter(thread__in=ids).count()
        n_runs = Run.objects.filter(session__thread__in=ids).count()
        listed = [str(t) for t in threads]
        counts = {"threads": len(threads), "sessions (history and state, in the store too)": n_sessions, "runs": n_runs}
        return listed, counts, set(), []

    def delete_model(self, request: HttpRequest, obj: Thread) -> None:
        thread_delete(thread=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for thread in queryset:
            thread_delete(thread=thread)

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: dict | None = None) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except StoreError as exc:
            self.message_user(request, f"Not deleted: the session store did not answer ({exc}).", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:sessions_app_thread_change", args=[object_id]))
