from django.apps import AppConfig


class SessionsAppConfig(AppConfig):
    name = "sessions_app"
    verbose_name = "Tenants and sessions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_login_failed

        from sessions_app.admin_site import login_failed

        user_login_failed.connect(login_failed, dispatch_uid="sessions_app.login_failed")
