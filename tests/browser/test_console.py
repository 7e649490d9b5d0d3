"""A tenant's operator, in a real browser: logs in, finds a thread, reads, exports and deletes it.

Also takes the README's screenshots (home, threads, thread): into docs/screenshots/ with
``AK_UPDATE_SCREENSHOTS=1``, else into the test's temporary folder, so a test run leaves the
checkout as it found it.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from agents_app.models import Agent, Run
from agents_app.runs.submit import RunRequest, run_submit
from console.staff import tenant_staff_add
from sessions_app.core import Session as StoreSession
from sessions_app.models import Session, Thread
from sessions_app.selectors import session_key
from sessions_app.services import tenant_create
from sessions_app.stores import get_store
from tests import services

README_SCREENSHOTS = services.ROOT / "docs" / "screenshots"
PASSWORD = "operator-pass-123"

CONVERSATIONS = [
    ("alice@example.com", "order-4411", "Where is my order #4411?", "Refund request"),
    ("alice@example.com", "order-4411-followup", "It arrived broken, can I get a refund?", "Broken parcel"),
    ("bruno@example.com", "onboarding-bruno", "How do I invite my team?", "Team invites"),
    ("chen@example.com", "billing-chen", "Why was I charged twice?", "Double charge"),
    ("dana@example.com", "api-dana", "What is the rate limit of the API?", ""),
]


def seed() -> tuple[Session, Session]:
    """Tenant acme's conversations (through the real run path) and one of tenant globex."""
    acme, _ = tenant_create(slug="acme", name="Acme Support")
    globex, _ = tenant_create(slug="globex", name="Globex")
    Agent.objects.create(tenant=acme, name="triage", framework="echo")
    for user_id, session_id, message, title in CONVERSATIONS:
        for agent, text in (("triage", message), ("echo", "Thanks!")):
            asyncio.run(run_submit(RunRequest(agent, text, session_id=session_id, user_id=user_id), tenant=acme))
        Thread.objects.filter(session__session_id=session_id, tenant=acme).update(
            title=title, metadata={"channel": "web"}
        )
    target = Session.objects.select_related("tenant").get(tenant=acme, session_id="order-4411")
    store_session = StoreSession(target.session_id, tenant="acme")
    store_session.set("customer", {"tier": "gold", "orders": [4411, 4302]})
    store_session.set("last_intent", "refund", agent="triage")
    Run.objects.create(
        tenant=acme,
        session=target,
        agent=Agent.objects.get(tenant=acme, name="triage"),
        message="Where is my order?",
        status=Run.Status.FAILED,
        error="StoreUnavailable: the session store did not answer in 5 s",
    )
    asyncio.run(
        run_submit(
            RunRequest("echo", "globex secret", session_id="order-4411", user_id="gina-of-globex"), tenant=globex
        )
    )
    other = Session.objects.select_related("tenant").get(tenant=globex, session_id="order-4411")
    operator = get_user_model().objects.create_user("olga", password=PASSWORD)
    tenant_staff_add(user=operator, tenant=acme)
    return target, other


@pytest.mark.django_db(transaction=True)
def test_operator_finds_reads_exports_and_deletes_a_thread(live_server, browser, tmp_path: Path) -> None:
    target, other = seed()
    wait = WebDriverWait(browser, 15)
    shots = README_SCREENSHOTS if os.environ.get("AK_UPDATE_SCREENSHOTS") == "1" else tmp_path
    shots.mkdir(parents=True, exist_ok=True)

    # Log in: the home page counts acme's runs and errors, and nothing of globex.
    browser.get(f"{live_server.url}/admin/login/")
    browser.find_element(By.NAME, "username").send_keys("olga")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD, Keys.ENTER)
    wait.until(ec.presence_of_element_located((By.ID, "console-overview")))
    overview = browser.find_element(By.ID, "console-overview").text
    assert "Tenant acme" in overview
    assert browser.find_element(By.CSS_SELECTOR, '#runs-by-status [data-status="succeeded"] .figure').text == "10"
    assert browser.find_element(By.CSS_SELECTOR, '#runs-by-status [data-status="failed"] .figure').text == "1"
    assert "StoreUnavailable" in browser.find_element(By.ID, "recent-errors").text
    assert "globex" not in browser.page_source
    browser.save_screenshot(str(shots / "home.png"))

    # The thread list: acme's five threads; find alice's.
    browser.find_element(By.LINK_TEXT, "Threads").click()
    wait.until(ec.presence_of_element_located((By.ID, "result_list")))
    rows = browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")
    assert len(rows) == len(CONVERSATIONS)
    assert "gina-of-globex" not in browser.page_source
    browser.save_screenshot(str(shots / "threads.png"))
    search = browser.find_element(By.ID, "searchbar")
    search.send_keys("alice@example.com", Keys.ENTER)
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "#changelist-search .small"), "2 results"))
    browser.find_element(By.LINK_TEXT, "Refund request").click()

    # The thread page: the conversation from the store, the state keys, the runs.
    wait.until(ec.presence_of_element_located((By.ID, "messages")))
    messages = browser.find_elements(By.CSS_SELECTOR, "#messages tr.message")
    assert len(messages) == 4
    first = messages[0].find_elements(By.TAG_NAME, "td")
    assert [first[1].text, first[4].text] == ["user", "Where is my order #4411?"]
    reply = messages[1].find_elements(By.TAG_NAME, "td")
    assert [reply[1].text, reply[2].text, reply[4].text] == [
        "assistant",
        "triage",
        "echo[turns=1]: Where is my order #4411?",
    ]
    state = browser.find_element(By.ID, "thread-state").text
    assert "customer" in state and "last_intent" in state
    assert len(browser.find_elements(By.CSS_SELECTOR, "#thread-runs tr.run")) == 3
    browser.save_screenshot(str(shots / "thread.png"))

    # Export: the JSON the link serves, fetched by the browser with the operator's session.
    href = browser.find_element(By.ID, "export-json").get_attribute("href")
    exported = json.loads(
        browser.execute_async_script(
            "const done = arguments[arguments.length - 1];fetch(arguments[0]).then(r => r.text()).then(done);",
            href,
        )
    )
    assert exported["session_id"] == "order-4411"
    assert [m["content"] for m in exported["messages"]] == [
        "Where is my order #4411?",
        "echo[turns=1]: Where is my order #4411?",
        "Thanks!",
        "echo[turns=2]: Thanks!",
    ]
    assert set(exported["messages"][0]) == {"role", "content", "agent", "created_at"}

    # Delete: confirm, and it is gone from the index and the store.
    browser.find_element(By.CSS_SELECTOR, "a.deletelink").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "form input[type=submit]")))
    browser.find_element(By.CSS_SELECTOR, "form input[type=submit]").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist li.success")))
    assert not Thread.objects.filter(pk=target.thread_id).exists()
    assert not get_store().load(session_key(target)).exists
    assert get_store().load(session_key(other)).exists  # globex's session of the same id is untouched

    # Another tenant's thread, by editing the URL: a 404.
    other_url = f"{live_server.url}/admin/sessions_app/thread/{other.thread_id}/change/"
    status = browser.execute_async_script(
        "const done = arguments[arguments.length - 1]; fetch(arguments[0]).then(r => done(r.status));", other_url
    )
    assert status == 404
    browser.get(other_url)
    assert "not_found" in browser.page_source and "globex secret" not in browser.page_source
    for name in ("home", "threads", "thread"):
        assert (shots / f"{name}.png").read_bytes().startswith(b"\x89PNG")
