"""Tenant scoping of the admin, written once and used by every ModelAdmin of the console.

A superuser sees every tenant. A staff user with a ``TenantStaff`` membership sees that tenant's
rows only: in lists, filters, search, autocomplete, foreign-key choices and object URLs (another
tenant's object is a 404). A staff user without a membership sees nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import admin
from django.db import models
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest

from sessions_app.models import Tenant, TenantStaff


@dataclass(frozen=True)
class Scope:
    """What one request may see: every tenant (``everything``), one ``tenant``, or nothing."""

    everything: bool
    tenant: Tenant | None

    def q(self, tenant_path: str) -> Q:
        """A filter that keeps the rows whose tenant (reached by ``tenant_path``) is in scope."""
        if self.everything:
            return Q()
        if self.tenant is None:
            return Q(pk__in=[])
        return Q(**{tenant_path: self.tenant.pk})

    def filter(self, queryset: QuerySet, tenant_path: str | None) -> QuerySet:
        if tenant_path is None:  # a model without a tenant (the auth user): superusers only
            return queryset if self.everything else queryset.none()
        return queryset.filter(self.q(tenant_path))


def request_scope(request: HttpRequest) -> Scope:
    """The scope of the request's user, looked up once per request."""
    cached = getattr(request, "_console_scope", None)
    if cached is not None:
        return cached
    user = request.user
    if user.is_active and user.is_superuser:
        scope = Scope(everything=True, tenant=None)
    else:
        membership = TenantStaff.objects.select_related("tenant").filter(user_id=user.pk).first()
        scope = Scope(everything=False, tenant=membership.tenant if membership else None)
    request._console_scope = scope
    return scope


def tenant_path(model: type[models.Model]) -> str | None:
    """How ``model`` reaches its tenant: ``"pk"`` for Tenant, ``"tenant"``, or None (no tenant)."""
    if model is Tenant:
        return "pk"
    if any(f.name == "tenant" and f.is_relation for f in model._meta.get_fields()):
        return "tenant"
    return None


class SuperuserOnlyMixin:
    """Only superusers see and change these (tenants and their staff)."""

    def has_module_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_active and request.user.is_superuser

    has_view_permission = has_add_permission = has_change_permission = has_delete_permission = has_module_permission


class TenantRelatedFilter(admin.RelatedFieldListFilter):
    """A foreign-key filter whose choices are the objects of the request's tenant only."""

    def field_choices(self, field: Any, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        ordering = self.field_admin_ordering(field, request, model_admin)
        path = tenant_path(field.related_model)
        scope = request_scope(request)
        limit = scope.q(path) if path else (Q() if scope.everything else Q(pk__in=[]))
        return field.get_choices(include_blank=False, ordering=ordering, limit_choices_to=limit)


class TenantFormMixin:
    """Checks that every object a form points at belongs to the form's tenant."""

    console_tenant: Tenant | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.console_tenant is not None and "tenant" in self.fields:
            # The field is hidden and disabled for tenant staff: its value is this, whatever is posted.
            self.initial["tenant"] = self.console_tenant.pk

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        tenant = cleaned.get("tenant") or self.console_tenant
        if tenant is None and self.instance.tenant_id:
            tenant = self.instance.tenant
        if tenant is None:
            return cleaned
        for name, value in list(cleaned.items()):
            other_tenant = getattr(value, "tenant_id", tenant.pk) != tenant.pk
            if name != "tenant" and isinstance(value, models.Model) and other_tenant:
                self.add_error(name, f"This belongs to another tenant than {tenant}.")
        return cleaned


class TenantScopedAdmin(admin.ModelAdmin):
    """The base of every console ModelAdmin: rows, choices, filters and saves follow the tenant.
    A foreign key to ``Tenant`` is named ``tenant``; for tenant staff it is set on save, hidden in
    forms, and dropped from list columns and filters."""

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return request_scope(request).filter(super().get_queryset(request), tenant_path(self.model))

    def _get_obj_does_not_exist_redirect(self, request: HttpRequest, opts: Any, object_id: str) -> Any:
        # Django redirects to the index with a message; an object out of scope must be a 404 that
        # says nothing about whether it exists elsewhere.
        raise Http404("not found")

    def get_list_display(self, request: HttpRequest) -> list:
        columns = list(super().get_list_display(request))
        return columns if request_scope(request).everything else [c for c in columns if c != "tenant"]

    def get_list_filter(self, request: HttpRequest) -> list:
        filters = list(super().get_list_filter(request))
        if request_scope(request).everything:
            return filters
        return [f for f in filters if (f[0] if isinstance(f, tuple) else f) != "tenant"]

    def formfield_for_dbfield(self, db_field: models.Field, request: HttpRequest, **kwargs: Any) -> Any:
        scope = request_scope(request)
        if db_field.name == "tenant" and db_field.is_relation and not scope.everything:
            tenant_pk = scope.tenant.pk if scope.tenant else None
            return forms.ModelChoiceField(
                queryset=Tenant.objects.filter(pk=tenant_pk),
                widget=forms.HiddenInput,
                disabled=True,
                required=True,
                initial=tenant_pk,
            )
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        kwargs["queryset"] = self._scoped_choices(db_field, request, kwargs.get("queryset"))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        kwargs["queryset"] = self._scoped_choices(db_field, request, kwargs.get("queryset"))
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def _scoped_choices(self, db_field: Any, request: HttpRequest, queryset: QuerySet | None) -> QuerySet:
        """A relation's choices (the admin's own, as Django picks them) kept to the request's tenant."""
        related = db_field.remote_field.model
        if queryset is None:
            queryset = self.get_field_queryset(None, db_field, request)
        if queryset is None:
            queryset = related._default_manager.all()
        return request_scope(request).filter(queryset, tenant_path(related))

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> type:
        form = super().get_form(request, obj, change=change, **kwargs)
        if tenant_path(self.model) != "tenant":
            return form
        return type(form)(form.__name__, (TenantFormMixin, form), {"console_tenant": request_scope(request).tenant})

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        scope = request_scope(request)
        if scope.tenant is not None and tenant_path(self.model) == "tenant":
            obj.tenant = scope.tenant
        super().save_model(request, obj, form, change)

    # A staff user without a tenant sees nothing and changes nothing.
    def has_add_permission(self, request: HttpRequest) -> bool:
        scope = request_scope(request)
        return (scope.everything or scope.tenant is not None) and super().has_add_permission(request)
