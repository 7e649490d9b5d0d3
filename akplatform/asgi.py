"""ASGI entry point: what ``gunicorn akplatform.asgi:application`` serves."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "akplatform.settings")
application = get_asgi_application()

from django.core.signals import request_started  # noqa: E402 - after the apps are loaded
from django.db import close_old_connections, reset_queries  # noqa: E402

from agents_app.frameworks import preload_frameworks  # noqa: E402
from akplatform.heap import freeze_loaded  # noqa: E402

# Under ASGI a request's synchronous code runs in a thread made for that request, which holds no
# connection when the request starts, and the async views give theirs back after each call
# (akplatform.aio.db). Django's two request_started receivers would find nothing to close or reset
# there, and cost every request a thread hop; request_finished still closes what a request opened.
request_started.disconnect(close_old_connections)
request_started.disconnect(reset_queries)

preload_frameworks()  # an SDK imported now, not in a first run, on the event loop
freeze_loaded()  # what is loaded stays out of the collector's full passes (akplatform.heap)
