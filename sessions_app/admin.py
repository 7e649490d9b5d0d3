"""The admin of the index's API keys: issued (the raw key shown once) and revoked. The index's
other models are the console's (``console/admin.py``); every ModelAdmin is tenant-scoped."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from sessions_app.admin_scoping import TenantRelatedFilter, TenantScopedAdmin, request_scope
from sessions_app.models import ApiKey, Tenant
from sessions_app.services import api_key_issue, api_key_revoke


class ApiKeyIssueForm(forms.Form):
    name = forms.CharField(max_length=100, required=False, help_text="What the key is for, e.g. 'production web'.")
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.all())


@admin.register(ApiKey)
class ApiKeyAdmin(TenantScopedAdmin):
    list_display = ["prefix", "tenant", "name", "active", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("tenant", TenantRelatedFilter), "revoked_at", "last_used_at"]
    list_select_related = ["tenant"]
    search_fields = ["prefix", "name"]
    fields = ["tenant", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["tenant", "prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    @admin.display(description="active", boolean=True, ordering="revoked_at")
    def active(self, obj: ApiKey) -> bool:
        return obj.is_active

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return self._without_tenant(request, super().get_readonly_fields(request, obj))

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return self._without_tenant(request, super().get_fields(request, obj))

    def _without_tenant(self, request: HttpRequest, fields: Any) -> list[str]:
        return list(fields) if request_scope(request).everything else [f for f in fields if f != "tenant"]

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        """Issue a key: the raw key is on the page that answers the POST, and nowhere else, ever."""
        if not self.has_add_permission(request):
            raise Http404("not found")
        scope = request_scope(request)
        form = ApiKeyIssueForm(request.POST or None)
        form.fields["tenant"].queryset = scope.filter(Tenant.objects.all(), "pk")
        if not scope.everything:
            form.fields["tenant"].widget = forms.HiddenInput()
            form.fields["tenant"].disabled = True
            form.fields["tenant"].initial = scope.tenant.pk
        context = {**self.admin_site.each_context(request), "opts": self.opts, "form": form}
        context["title"] = "Issue an API key"
        if request.method == "POST" and form.is_valid():
            key, raw = api_key_issue(tenant=form.cleaned_data["tenant"], name=form.cleaned_data["name"])
            self.log_addition(request, key, [{"added": {}}])
            context.update(title="API key issued", key=key, raw_key=raw)
            response = TemplateResponse(request, "admin/sessions_app/apikey/issued.html", context)
            response["Cache-Control"] = "no-store"
            return response
        return TemplateResponse(request, "admin/sessions_app/apikey/issue.html", context)

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet) -> None:
        keys = list(queryset.filter(revoked_at__isnull=True))
        for key in keys:
            api_key_revoke(api_key=key)
            self.log_change(request, key, "Revoked.")
        self.message_user(request, f"Revoked {len(keys)} key(s).", messages.SUCCESS)
