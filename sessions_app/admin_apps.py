"""``django.contrib.admin`` with the console's site; named in ``INSTALLED_APPS`` in its place."""

from __future__ import annotations

from django.contrib.admin.apps import AdminConfig


class ConsoleAdminConfig(AdminConfig):
    default_site = "sessions_app.admin_site.ConsoleAdminSite"
