"""A tenant's operator, in a real browser, approves a run that waits for a person from the console's
home page: the run is resumed (queued for a worker) with the operator's decision; another tenant's
paused run is not shown."""

from __future__ import annotations

import asyncio

import pytest
from django.contrib.auth import get_user_model
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from agents_app.models import Run
from agents_app.runs.submit import RunRequest, run_submit
from agents_app.services import agent_create
from console.staff import tenant_staff_add
from sessions_app.services import tenant_create

PASSWORD = "operator-pass-123"


def paused_run(tenant, message: str) -> Run:
    agent_create(tenant=tenant, name="deployer", framework="echo", config={"approval": True})
    submitted = asyncio.run(run_submit(RunRequest("deployer", message, session_id="deploy-1"), tenant=tenant))
    return submitted.run


@pytest.mark.django_db(transaction=True)
def test_operator_approves_a_paused_run_from_the_home_page(live_server, browser) -> None:
    acme, _ = tenant_create(slug="acme-hitl", name="Acme")
    globex, _ = tenant_create(slug="globex-hitl", name="Globex")
    mine, theirs = paused_run(acme, "deploy v2 to production"), paused_run(globex, "globex secret deploy")
    operator = get_user_model().objects.create_user("pat", password=PASSWORD)
    tenant_staff_add(user=operator, tenant=acme)
    wait = WebDriverWait(browser, 15)

    browser.get(f"{live_server.url}/admin/login/")
    browser.find_element(By.NAME, "username").send_keys("pat")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD, Keys.ENTER)
    wait.until(ec.presence_of_element_located((By.ID, "paused-runs")))
    table = browser.find_element(By.ID, "paused-runs").text
    assert "deploy v2 to production" in table and "globex" not in browser.page_source

    browser.find_element(By.CSS_SELECTOR, f'#paused-runs input[value="{mine.pk}"]').click()
    browser.find_element(By.CSS_SELECTOR, '#paused-runs button[value="approve"]').click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist")))
    assert "Approved 1 paused run(s)" in browser.find_element(By.CSS_SELECTOR, "ul.messagelist").text
    mine.refresh_from_db()
    assert (mine.status, mine.answer["decisions"]["echo"]["approve"]) == ("queued", True)
    assert "approved by pat" in mine.answer["decisions"]["echo"]["message"]
    assert Run.objects.get(pk=theirs.pk).status == "paused"
