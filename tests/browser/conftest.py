"""A headless Chromium (Debian's chromium and chromium-driver) driven by selenium."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import services
from tests.live.queue import start_queue  # the platform with its workers, for the browser to follow runs


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    """Fails, never skips, without a browser: ``make test`` installs it (tests/services.py)."""
    chromium, chromedriver = services.chromium_binaries()
    if chromium is None or chromedriver is None:
        pytest.fail(
            "the browser tests need Debian's Chromium and its driver, and they are missing: "
            "run `sudo apt-get install chromium chromium-driver` (`python -m tests.services check` "
            "installs them itself when it runs as root)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in services.CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.add_argument("--window-size=1400,1000")
    driver = webdriver.Chrome(
        service=Service(chromedriver, log_output=str(tmp_path / "chromedriver.log")), options=options
    )
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)


__all__ = ["browser", "start_queue"]
