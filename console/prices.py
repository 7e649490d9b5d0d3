"""The price table and its currency, edited by superusers (the platform's operators): every
tenant's spend is priced by it, so tenant staff neither see nor change it."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from agents_app.models import ModelPrice, PricingSettings
from sessions_app.admin_scoping import SuperuserOnlyMixin


@admin.register(ModelPrice)
class ModelPriceAdmin(SuperuserOnlyMixin, admin.ModelAdmin):
    """Prices per million tokens. Spend is computed from them when it is read: an edit here
    changes the spend shown for past days too."""

    list_display = ["model", "prompt_per_million", "completion_per_million", "cached_per_million", "updated_at"]
    list_editable = ["prompt_per_million", "completion_per_million", "cached_per_million"]
    search_fields = ["model"]
    readonly_fields = ["updated_at"]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        title = f"Model prices per million tokens, in {PricingSettings.current().currency}"
        return super().changelist_view(request, {"title": title, **(extra_context or {})})


@admin.register(PricingSettings)
class PricingSettingsAdmin(SuperuserOnlyMixin, admin.ModelAdmin):
    """One row: the currency of the price table."""

    list_display = ["currency"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and not PricingSettings.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        PricingSettings.current()  # the one row exists, to be edited
        return super().changelist_view(request, extra_context)
