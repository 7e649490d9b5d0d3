"""kombu's filesystem transport (the embedded broker of ``make run``) with each message written
whole before a consumer can take it.

kombu's own ``_put`` creates the message's file and then writes it; a consumer in another process
that lists the folder in between moves the empty file away, reads nothing, and its worker stops on
the JSON error (celery/kombu#1551). Here a message is written under a name no consumer takes (a
leading dot: kombu takes only ``<stamp>.<queue>.msg``) and renamed into place, which is atomic on
one filesystem. Selected by ``CELERY_BROKER_TRANSPORT`` when ``CELERY_BROKER_URL`` is
``filesystem://`` (``akplatform/settings.py``); everything else is kombu's.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        """Put ``payload`` on ``queue``: kombu's file name (its millisecond stamp orders the
        queue), written in full under a hidden name first."""
        data = str_to_bytes(dumps(payload))
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        partial = os.path.join(self.data_folder_out, f".{name}.part")
        try:
            with open(partial, "wb") as out:
                out.write(data)
            os.replace(partial, os.path.join(self.data_folder_out, name))
        except OSError as exc:
            with contextlib.suppress(OSError):  # a full disk leaves no part behind
                os.unlink(partial)
            raise ChannelError(f"Cannot add file {name!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
