from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig


class ConsoleConfig(AppConfig):
    """The console's pages and templates; a failed admin login counts towards its lockout."""

    name = "console"
    verbose_name = "Console"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_login_failed

        from console.site import login_failed

        user_login_failed.connect(login_failed, dispatch_uid="console.login_failed")


class ConsoleAdminConfig(AdminConfig):
    """``django.contrib.admin`` with the console's site; named in ``INSTALLED_APPS`` in its place."""

    default_site = "console.site.ConsoleAdminSite"
