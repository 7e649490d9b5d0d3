from django.apps import AppConfig


class AgentsAppConfig(AppConfig):
    name = "agents_app"
    verbose_name = "Agents and runs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from celery.signals import worker_init
        from django.db.models.signals import post_delete, post_save

        from agents_app.api import schema  # noqa: F401 - registers the OpenAPI auth extension
        from agents_app.api.key_cache import keys_changed
        from agents_app.frameworks import preload_frameworks
        from agents_app.services import tenant_given_builtins
        from sessions_app.models import ApiKey, Tenant

        post_save.connect(tenant_given_builtins, sender=Tenant, dispatch_uid="agents_app.tenant_builtins")
        for model in (ApiKey, Tenant):  # a key revoked or deleted, a tenant's limits changed
            post_save.connect(keys_changed, sender=model, dispatch_uid=f"agents_app.keys_changed.{model.__name__}")
            post_delete.connect(keys_changed, sender=model, dispatch_uid=f"agents_app.keys_gone.{model.__name__}")
        # A worker imports its frameworks' libraries as it starts, not in its first runs (the web
        # tier does so in akplatform/asgi.py).
        worker_init.connect(lambda **_: preload_frameworks(), weak=False, dispatch_uid="agents_app.preload")
