"""The console's page of budgets: set by superusers (the platform's operators), read by a tenant's
staff (their tenant's only); each budget's page shows its use in the current window and the
alerts it sent."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from agents_app.budgets.use import budgets_use
from agents_app.models import Agent, Budget, BudgetAlert
from agents_app.outbound import validate_webhook_url
from agents_app.usage.prices import currency
from sessions_app.admin_scoping import TenantRelatedFilter, TenantScopedAdmin


class BudgetForm(forms.ModelForm):
    alert_webhook_url = forms.URLField(
        required=False,
        max_length=2048,
        assume_scheme="https",
        validators=[validate_webhook_url],
        help_text="POSTed an event (signed with the tenant's webhook secret) when use crosses 80 % and 100 % of a"
        " cap; every crossing is also logged as a warning.",
    )

    class Meta:
        model = Budget
        fields = ["tenant", "agent", "period", "max_tokens", "max_spend", "alert_webhook_url"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("max_tokens") is None and cleaned.get("max_spend") is None and not self.errors:
            raise forms.ValidationError("Give a cap on tokens, on spend, or both.")
        tenant = cleaned.get("tenant") or (self.instance.tenant if self.instance.tenant_id else None)
        agent = cleaned.get("agent")
        if tenant is not None and agent and not Agent.objects.filter(tenant=tenant, name=agent).exists():
            self.add_error("agent", f"The tenant {tenant} has no agent named {agent!r}.")
        return cleaned


class BudgetAlertInline(admin.TabularInline):
    model = BudgetAlert
    fields = ["window_start", "threshold", "caps", "used_tokens", "used_spend", "created_at", "webhook_status"]
    fields += ["webhook_attempts", "webhook_error"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-window_start", "-threshold"]
    verbose_name_plural = "alerts sent (once per window, threshold and caps)"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Budget)
class BudgetAdmin(TenantScopedAdmin):
    """Budgets are the operators' to set: a tenant's staff may only look at theirs."""

    form = BudgetForm
    inlines = [BudgetAlertInline]
    list_display = ["tenant", "scope", "period", "max_tokens", "max_spend", "alert_webhook_url", "updated_at"]
    list_filter = [("tenant", TenantRelatedFilter), "period"]
    list_select_related = ["tenant"]
    search_fields = ["agent"]
    readonly_fields = ["used_now", "created_at", "updated_at"]

    @admin.display(description="agent")
    def scope(self, obj: Budget) -> str:
        return obj.agent or "(the whole tenant)"

    @admin.display(description="used in the current window")
    def used_now(self, obj: Budget) -> str:
        if obj.pk is None:
            return "-"
        (use,) = budgets_use([obj])
        share = f"{use.percent:.1f} % of its caps" if use.percent < 1000 else "over 1000 % of its caps"
        return (
            f"{use.tokens} tokens, {use.spend:.6f} {currency()} since {use.window.start} ({share});"
            f" resets at {use.window.resets_at:%Y-%m-%d %H:%M} UTC"
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_active and request.user.is_superuser
