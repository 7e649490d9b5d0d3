"""An ASGI app that answers ``POST`` with what it was sent and does nothing else: Django's ceiling.

``bench/cheap_path.py`` serves it exactly as the platform is served (gunicorn, the project's
``gunicorn.conf.py``, the same number of processes) to show how many requests/s any Django web tier
answers on the machine, before a database, a store or a tenant is touched:

- ``POST /django``: a plain async Django view, no middleware, the body parsed with ``json``;
- ``POST /drf``: a DRF ``APIView`` (run in a thread, as Django runs any sync view under ASGI),
  without authentication, permissions or throttles, the body parsed by DRF's JSON parser.

Both answer ``{"result": <message>, "session_id": <session_id>}``, as the platform's ``POST /run``
does. Its own settings, configured here: nothing of the project's is loaded.
"""

from __future__ import annotations

import json

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="an-empty-app-for-a-benchmark-with-nothing-to-sign",  # noqa: S106 - it signs nothing
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=["rest_framework"],
    REST_FRAMEWORK={
        "DEFAULT_AUTHENTICATION_CLASSES": [],
        "DEFAULT_PERMISSION_CLASSES": [],
        "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
        "UNAUTHENTICATED_USER": None,
    },
)
django.setup()

from django.core.asgi import get_asgi_application  # noqa: E402 - after settings.configure
from django.http import HttpRequest, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402
from rest_framework.request import Request  # noqa: E402
from rest_framework.response import Response  # noqa: E402
from rest_framework.views import APIView  # noqa: E402


async def echo(request: HttpRequest) -> JsonResponse:
    body = json.loads(request.body)
    return JsonResponse({"result": body["message"], "session_id": body["session_id"]})


class Echo(APIView):
    def post(self, request: Request) -> Response:
        return Response({"result": request.data["message"], "session_id": request.data["session_id"]})


urlpatterns = [path("django", echo), path("drf", Echo.as_view())]
application = get_asgi_application()
