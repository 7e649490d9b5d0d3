"""Web and worker processes freeze what they loaded: the collector's full passes skip it
(``infra.heap``; measured in docs/performance.md)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.services import ROOT

WEB = """
import gc
import akplatform.asgi
print(gc.get_freeze_count(), len(gc.get_objects()))
"""

WORKER = """
import gc
from celery.signals import worker_process_init, worker_ready
from akplatform.celery import app
app.loader.import_default_modules()
before = gc.get_freeze_count()
worker_ready.send(sender=None)
ready = gc.get_freeze_count()
gc.unfreeze()
worker_process_init.send(sender=None)
print(before, ready, gc.get_freeze_count(), len(gc.get_objects()))
"""


def _python(code: str) -> list[int]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "akplatform.settings", "DJANGO_DEBUG": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return [int(n) for n in done.stdout.split()]


def test_the_asgi_application_freezes_what_it_loaded() -> None:
    frozen, walked = _python(WEB)
    assert frozen > 50_000  # Django, DRF, the apps and the preloaded SDKs: out of every full pass
    assert walked < frozen / 5  # what a full pass walks once the process serves


def test_a_worker_and_a_prefork_child_freeze_what_they_loaded() -> None:
    before, ready, child, walked = _python(WORKER)
    assert before == 0  # loading alone freezes nothing: a worker freezes once ready
    assert ready > 50_000 and child > 50_000
    assert walked < child / 5
