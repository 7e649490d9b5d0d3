"""The API's async views: adrf's ``APIView``, whose coroutine handlers await a model.

adrf runs DRF's checks (authentication, permissions, throttles) in the request's thread, then
awaits the handler on the event loop. The checks may open a database connection (a key looked
up, its ``last_used_at`` written): ``initial`` gives it back (to PostgreSQL's pool) before the
handler awaits, so a run waiting on its model holds none; the handler's own queries go through
``infra.io_threads.db``.
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
