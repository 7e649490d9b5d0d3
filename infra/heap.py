"""A serving process keeps what it loaded out of the garbage collector's full passes.

A web or worker process loads Django, DRF, Celery and the frameworks' SDKs: about 500,000 objects
that live as long as it does. CPython's full collection walks every tracked object, so with them
each pass took up to 390 ms here, and 200 streamed runs at once set off eight or nine per web
process in six seconds, each stalling the event loop, and every token on it, for that long.
``freeze_loaded`` moves what is alive once the process has loaded into the permanent generation,
which the collector does not walk (``gc.freeze``, as Python's documentation suggests): the passes
under such a load walk only what the runs made. Measured in docs/performance.md.
"""

from __future__ import annotations

import gc


def freeze_loaded() -> None:
    """Collect what loading left behind, then freeze the rest: once, as the process is ready to
    serve. What is frozen is never collected, so call it after loading, not during work."""
    gc.collect()
    gc.freeze()
