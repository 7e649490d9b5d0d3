"""The API's async views: adrf's ``APIView``, whose coroutine handlers await a model.

DRF's checks (authentication, throttles) may open a database connection in the request's thread:
``initial`` gives it back before the handler awaits, so a run waiting on its model holds none.
"""

from __future__ import annotations

from typing import Any

from adrf.views import APIView
from django.db import close_old_connections
from rest_framework.request import Request


class AsyncAPIView(APIView):
    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        try:
            super().initial(request, *args, **kwargs)
        finally:
            close_old_connections()
