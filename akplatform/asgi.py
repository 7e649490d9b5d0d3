"""ASGI entry point: what ``gunicorn akplatform.asgi:application`` serves."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "akplatform.settings")
application = get_asgi_application()

from agents_app.frameworks import preload_frameworks  # noqa: E402 - after the apps are loaded
from infra.heap import freeze_loaded  # noqa: E402

preload_frameworks()  # an SDK imported now, not in a first run, on the event loop
freeze_loaded()  # what is loaded stays out of the collector's full passes (infra.heap)
