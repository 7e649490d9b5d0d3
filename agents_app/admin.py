"""Admin for agents and runs. The tenant-scoped operations console grows here (see issue 4)."""

from __future__ import annotations

from django.contrib import admin

from agents_app.models import Agent, Run


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant", "framework", "updated_at"]
    list_filter = ["tenant", "framework"]
    list_select_related = ["tenant"]
    search_fields = ["name"]


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ["id", "tenant", "agent", "status", "created_at", "finished_at"]
    list_filter = ["status", "tenant"]
    list_select_related = ["tenant", "agent"]
    readonly_fields = ["created_at", "started_at", "finished_at", "attempts"]
    raw_id_fields = ["session", "agent"]
