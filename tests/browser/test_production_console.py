"""The console as deployed: DEBUG off, behind gunicorn; its login page is styled."""

from __future__ import annotations

import requests


def test_the_login_page_loads_its_css_with_debug_off(start_platform, browser) -> None:
    platform = start_platform(
        {
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": "k3y-" + "x7" * 30,
            "AK_SECRETS_KEY": "s3c-" + "y8" * 20,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        }
    )
    browser.get(f"{platform.url}/admin/login/")
    sheets = browser.execute_script("return Array.from(document.styleSheets).map(s => s.href).filter(Boolean)")
    assert sheets, "the login page links no stylesheet"
    for href in sheets:
        answer = requests.get(href, timeout=10)
        assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/css"), href
    loaded = browser.execute_script("return Array.from(document.styleSheets).map(s => s.cssRules.length)")
    assert all(n > 0 for n in loaded), loaded  # the browser read every one of them
