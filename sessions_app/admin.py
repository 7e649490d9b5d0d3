"""Admin for the index. The tenant-scoped operations console grows here (see issue 4)."""

from __future__ import annotations

from django.contrib import admin

from sessions_app.models import ApiKey, EndUser, Session, Tenant, Thread


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "created_at"]
    search_fields = ["slug", "name"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["prefix", "tenant", "name", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["tenant"]
    list_select_related = ["tenant"]
    readonly_fields = ["prefix", "key_hash", "created_at", "last_used_at"]


@admin.register(EndUser)
class EndUserAdmin(admin.ModelAdmin):
    list_display = ["external_id", "tenant", "created_at"]
    list_filter = ["tenant"]
    list_select_related = ["tenant"]
    search_fields = ["external_id"]


@admin.register(Thread)
class ThreadAdmin(admin.ModelAdmin):
    list_display = ["__str__", "tenant", "user", "status", "created_at"]
    list_filter = ["tenant", "status"]
    list_select_related = ["tenant", "user"]
    search_fields = ["title", "session__session_id", "user__external_id"]


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = ["session_id", "tenant", "user", "message_count", "last_activity_at", "expires_at"]
    list_filter = ["tenant"]
    list_select_related = ["tenant", "user"]
    search_fields = ["session_id", "user__external_id"]
    readonly_fields = ["message_count", "created_at", "last_activity_at", "expires_at"]
