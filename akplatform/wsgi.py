"""WSGI entry point: `gunicorn akplatform.wsgi:application`."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "akplatform.settings")
application = get_wsgi_application()

from akplatform.heap import freeze_loaded  # noqa: E402 - after the apps are loaded

freeze_loaded()  # what is loaded stays out of the collector's full passes
