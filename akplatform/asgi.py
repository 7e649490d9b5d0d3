"""ASGI entry point."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "akplatform.settings")
application = get_asgi_application()

from agents_app.frameworks import preload_frameworks  # noqa: E402 - needs the apps loaded above

preload_frameworks()  # an SDK imported now, not in a first run, on the event loop
