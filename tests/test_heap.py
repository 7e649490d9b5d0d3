"""Web and worker processes freeze what they loaded: the collector's full passes skip it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.services import ROOT

WEB = """
import gc
import akplatform.{entry}
print(gc.get_freeze_count(), len(gc.get_objects()))
"""

WORKER = """
import gc
from akplatform.celery import app
from celery.signals import worker_ready
before = gc.get_freeze_count()
app.loader.import_default_modules()
worker_ready.send(sender=None)
print(before, gc.get_freeze_count(), len(gc.get_objects()))
"""


def _python(code: str) -> list[int]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "akplatform.settings"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return [int(n) for n in result.stdout.split()]


@pytest.mark.parametrize("entry", ["asgi", "wsgi"])
def test_the_web_application_freezes_what_it_loaded(entry: str) -> None:
    frozen, walked = _python(WEB.format(entry=entry))
    assert frozen > 50_000  # Django, DRF and the apps: left out of every full collection
    assert walked < frozen / 5  # what a full pass walks once the process serves


def test_a_worker_freezes_what_it_loaded_once_ready() -> None:
    before, frozen, walked = _python(WORKER)
    assert before == 0
    assert frozen > 50_000 and walked < frozen / 5
