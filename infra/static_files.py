"""WhiteNoise's middleware for both request modes, so that ASGI requests do not hop threads.

WhiteNoise's is sync only: under ASGI each request would hold a thread for its whole length. Here a
request outside ``STATIC_URL`` goes straight on; only a static file is served in a thread.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponseBase
from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any = None, **kwargs: Any) -> None:
        super().__init__(get_response, **kwargs)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        return super().__call__(request)

    def _find(self, path: str) -> Any:
        return self.find_file(path) if self.autorefresh else self.files.get(path)

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        if request.path_info.startswith(self.static_prefix):
            static_file = await sync_to_async(self._find, thread_sensitive=False)(request.path_info)
            if static_file is not None:
                return await sync_to_async(self.serve, thread_sensitive=False)(static_file, request)
        return await self.get_response(request)
