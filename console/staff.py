"""Tenant staff: the logins that operate one tenant's rows in the console, through a group of
permissions on both apps' models."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission
from django.db.models import Q

from sessions_app.models import Tenant, TenantStaff

#: What a tenant's operators may do in the admin; their rows are scoped to their tenant.
OPERATOR_GROUP = "Tenant operators"
OPERATOR_PERMISSIONS = {
    "sessions_app": {
        "apikey": ("view", "add", "change", "delete"),
        "enduser": ("view", "change", "delete"),
        "thread": ("view", "change", "delete"),
        "session": ("view", "delete"),
    },
    "agents_app": {
        "agent": ("view", "add", "change", "delete"),
        "run": ("view", "change"),
        "secret": ("view", "add", "change", "delete"),
        "schedule": ("view", "add", "change", "delete"),
        "budget": ("view",),  # set by the platform's operators (superusers)
    },
}


def operator_group_ensure() -> Group:
    """The group that gives tenant staff the console's permissions (made or brought up to date)."""
    group, _ = Group.objects.get_or_create(name=OPERATOR_GROUP)
    wanted = Q(pk__in=[])
    for app_label, models in OPERATOR_PERMISSIONS.items():
        for model, actions in models.items():
            codenames = [f"{action}_{model}" for action in actions]
            wanted |= Q(content_type__app_label=app_label, content_type__model=model, codename__in=codenames)
    group.permissions.set(Permission.objects.filter(wanted))
    return group


def tenant_staff_add(*, user: Any, tenant: Tenant) -> TenantStaff:
    """Make ``user`` a staff operator of ``tenant`` (moving them if they belonged to another)."""
    if not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    user.groups.add(operator_group_ensure())
    membership, _ = TenantStaff.objects.update_or_create(user=user, defaults={"tenant": tenant})
    return membership
