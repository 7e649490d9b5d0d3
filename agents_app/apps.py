from django.apps import AppConfig


class AgentsAppConfig(AppConfig):
    name = "agents_app"
    verbose_name = "Agents and runs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from agents_app.api import schema  # noqa: F401 - registers the OpenAPI auth extension
