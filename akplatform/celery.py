"""The Celery app: `celery -A akplatform worker`."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from functools import cached_property
from typing import Any

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "akplatform.settings")


class CelerySettings(Mapping[str, Any]):
    """Django's ``CELERY_*`` settings under Celery's own names (``CELERY_TASK_ACKS_LATE`` →
    ``task_acks_late``), read from Django's settings once, on Celery's first look.

    What ``config_from_object("django.conf:settings", namespace="CELERY")`` would give, as a plain
    mapping: through the namespace, every lookup tries each of an option's names on Django's lazy
    settings, and most options are left at Celery's defaults, so most lookups are misses, each
    an ``AttributeError`` raised through ``LazySettings``: ~60 µs per task published. The Django
    fixup's one option keeps its Django name (it asks for ``CELERY_DB_REUSE_MAX``).
    """

    prefix = "CELERY_"

    @cached_property
    def _values(self) -> dict[str, Any]:
        from django.conf import settings

        names = [name for name in dir(settings) if name.startswith(self.prefix)]
        values = {name[len(self.prefix) :].lower(): getattr(settings, name) for name in names}
        values["CELERY_DB_REUSE_MAX"] = values.pop("db_reuse_max", None)
        return values

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


app = Celery("akplatform")
app.config_from_object(CelerySettings())
app.autodiscover_tasks()


@app.on_after_configure.connect
def _make_broker_folders(sender: Celery, **kwargs: object) -> None:
    """The filesystem transport needs its folders before the first message."""
    options = sender.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        if options.get(key):
            os.makedirs(options[key], exist_ok=True)
