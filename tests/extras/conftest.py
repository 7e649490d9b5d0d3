"""The tests of the optional frameworks that cannot share the dev venv (README, "Frameworks").

``tests/extras/<name>/`` holds the tests of extra ``<name>``: they import its library, which the
dev venv lacks, so the suite (``make test``) leaves them out; ``make test-extra EXTRA=<name>``
runs them, alone, in that extra's own venv (``AK_TEST_EXTRA=<name>``).
"""

from __future__ import annotations

import os
from pathlib import Path

_HERE = Path(__file__).parent
_CHOSEN = os.environ.get("AK_TEST_EXTRA", "")

#: Every extra's directory but the one being tested (all of them in the suite).
collect_ignore = sorted(
    path.name for path in _HERE.iterdir() if path.is_dir() and path.name != "__pycache__" and path.name != _CHOSEN
)
