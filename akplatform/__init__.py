"""AK Platform: multi-tenant sessions and runs for AI agents."""

from akplatform.celery import app as celery_app

__all__ = ["celery_app"]
