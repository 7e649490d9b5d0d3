"""Usage in a real browser: a tenant's operator reads the usage dashboard (charts drawn by the
vendored Chart.js, figures that add up exactly to the runs' tokens and spend, and to what
``GET /usage`` answers), the runs list's tokens column and a run's usage; a superuser edits a
price and the spend follows. Another tenant's usage shows nowhere.

Takes the README's screenshots (usage dashboard, run page) at 1400 px wide: into
docs/screenshots/ with ``AK_UPDATE_SCREENSHOTS=1``, else into the test's temporary folder.
"""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from agents_app.errors import RunFailed
from agents_app.models import Agent, ModelPrice, Run
from agents_app.runs.submit import RunRequest, run_submit
from agents_app.usage.record import RunFacts, usage_add
from console.staff import tenant_staff_add
from sessions_app.services import api_key_issue, tenant_create
from tests import services
from tests.modelserver import ModelServer

README_SCREENSHOTS = services.ROOT / "docs" / "screenshots"
PASSWORD = "operator-pass-123"
PRICES = {"small-1": (Decimal("0.15"), Decimal("0.60")), "large-2": (Decimal("2.50"), Decimal("10.00"))}
AGENTS = {"writer": "small-1", "critic": "large-2"}
#: Runs made now through the real run path: (agent, session, prompt tokens, completion tokens, delay).
RUNS = [
    ("writer", "order-4411", 1200, 310, 0.2),
    ("critic", "order-4411", 2600, 420, 0.6),
    ("writer", "billing-chen", 900, 150, 0.1),
    ("critic", "billing-chen", 3100, 380, 0.4),
    ("writer", "api-dana", 700, 90, 0.1),
]
#: Earlier days' runs, recorded as each run's end records them: (days ago, agent, prompt, completion).
HISTORY = [(days, agent, 800 * days + 400, 120 * days + 50) for days in range(1, 7) for agent in AGENTS]


def cost(model: str, prompt: int, completion: int) -> Decimal:
    prompt_price, completion_price = PRICES[model]
    return (prompt * prompt_price + completion * completion_price) / 1_000_000


def seed(server: ModelServer) -> tuple[object, str]:
    """Acme's runs (five now, one failed, six days of history) and one of globex; the operator."""
    acme, _ = tenant_create(slug="acme", name="Acme Support")
    globex, _ = tenant_create(slug="globex", name="Globex")
    for name, model in AGENTS.items():
        Agent.objects.create(
            tenant=acme, name=name, framework="openai_chat", config={"base_url": server.url, "model": model}
        )
    for model, (prompt, completion) in PRICES.items():
        ModelPrice.objects.create(model=model, prompt_per_million=prompt, completion_per_million=completion)
    for agent, session_id, prompt, completion, delay in RUNS:
        server.reply(f"{agent} answers", usage=(prompt, completion), delay=delay)
        asyncio.run(run_submit(RunRequest(agent, "Where is my order?", session_id=session_id), tenant=acme))
    server.fail(500)
    with pytest.raises(RunFailed):
        asyncio.run(run_submit(RunRequest("writer", "And now?", session_id="order-4411"), tenant=acme))
    server.reply("globex answer", usage=(99999, 99999))
    Agent.objects.create(
        tenant=globex, name="spender", framework="openai_chat", config={"base_url": server.url, "model": "large-2"}
    )
    asyncio.run(run_submit(RunRequest("spender", "hi", session_id="g-1"), tenant=globex))
    now = timezone.now()
    for days, agent, prompt, completion in HISTORY:
        ended = now - timedelta(days=days)
        facts = RunFacts(
            acme.pk, agent, AGENTS[agent], f"history-{days}", ended - timedelta(seconds=3), ended - timedelta(seconds=2)
        )
        usage_add(
            facts,
            changes={
                "status": "succeeded",
                "finished_at": ended,
                "usage": {"prompt_tokens": prompt, "completion_tokens": completion},
            },
        )
    operator = get_user_model().objects.create_user("olga", password=PASSWORD)
    tenant_staff_add(user=operator, tenant=acme)
    get_user_model().objects.create_superuser("root", password=PASSWORD)
    _, key = api_key_issue(tenant=acme)
    return acme, key


def expected() -> dict[str, dict]:
    """Per agent: runs, failed, prompt and completion tokens, cost."""
    groups = {agent: {"runs": 0, "failed": 0, "prompt": 0, "completion": 0, "cost": Decimal(0)} for agent in AGENTS}
    rows = [(agent, prompt, completion) for agent, _, prompt, completion, _ in RUNS]
    rows += [(agent, prompt, completion) for _, agent, prompt, completion in HISTORY]
    for agent, prompt, completion in rows:
        group = groups[agent]
        group["runs"] += 1
        group["prompt"] += prompt
        group["completion"] += completion
        group["cost"] += cost(AGENTS[agent], prompt, completion)
    groups["writer"]["runs"] += 1
    groups["writer"]["failed"] += 1
    return groups


def login(browser, url: str, username: str) -> None:
    browser.delete_all_cookies()
    browser.get(f"{url}/admin/login/")
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD, Keys.ENTER)
    WebDriverWait(browser, 15).until(ec.presence_of_element_located((By.ID, "console-overview")))


def full_page_screenshot(browser, path: Path) -> None:
    """The whole page at 1400 px wide (the window made as tall as the page for the shot)."""
    height, chrome = browser.execute_script(
        "return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight]"
    )
    browser.set_window_size(1400, max(height, 1000) + chrome)
    browser.save_screenshot(str(path))
    browser.set_window_size(1400, 1000)


def money(value: Decimal) -> str:
    return f"{value:,.6f} USD"


@pytest.mark.django_db(transaction=True)
def test_the_dashboard_and_a_run_show_usage_that_adds_up(live_server, browser, model_server, tmp_path: Path) -> None:
    acme, key = seed(model_server)
    want = expected()
    wait = WebDriverWait(browser, 15)
    shots = README_SCREENSHOTS if os.environ.get("AK_UPDATE_SCREENSHOTS") == "1" else tmp_path
    shots.mkdir(parents=True, exist_ok=True)

    # The API's figures, for the tenant: the same sums the console shows.
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    by_agent = {item["key"]: item for item in api.get("/usage?group_by=agent").json()["items"]}
    for agent, group in want.items():
        item = by_agent[agent]
        assert (item["runs"], item["failed"], item["prompt_tokens"], item["completion_tokens"]) == (
            group["runs"], group["failed"], group["prompt"], group["completion"],
        )  # fmt: skip
        assert Decimal(str(item["cost"])) == group["cost"]

    # The operator: the dashboard, from the home page's link.
    login(browser, live_server.url, "olga")
    total_runs = sum(group["runs"] for group in want.values())
    total_cost = money(sum(group["cost"] for group in want.values()))
    summary = browser.find_elements(By.CSS_SELECTOR, "#usage-summary .console-card .figure")
    tokens = sum(group["prompt"] + group["completion"] for group in want.values())
    assert [card.text for card in summary] == [str(total_runs), str(tokens), total_cost]
    browser.find_element(By.ID, "usage-link").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#usage-dashboard[data-charts-drawn='6']")))
    assert browser.execute_script("return window.usageCharts.map(c => c.config.type)") == [
        "bar",
        "bar",
        "bar",
        "line",
        "line",
        "line",
    ]
    assert browser.execute_script("return Chart.version") == "4.5.1"
    cards = {
        card.get_attribute("data-figure"): card.find_element(By.CLASS_NAME, "figure").text
        for card in browser.find_elements(By.CSS_SELECTOR, "#usage-total .usage-card")
    }
    assert cards == {
        "runs": str(total_runs),
        "failed": f"{100 / total_runs:.1f} %",
        "prompt_tokens": str(sum(group["prompt"] for group in want.values())),
        "completion_tokens": str(sum(group["completion"] for group in want.values())),
        "cost": total_cost,
    }
    for agent, group in want.items():
        cells = [
            cell.text for cell in browser.find_elements(By.CSS_SELECTOR, f'#usage-by-agent tr[data-key="{agent}"] td')
        ]
        assert cells == [
            agent,
            str(group["runs"]),
            str(group["failed"]),
            str(group["prompt"]),
            str(group["completion"]),
            money(group["cost"]),
        ]
    models = [
        row.get_attribute("data-key") for row in browser.find_elements(By.CSS_SELECTOR, "#usage-by-model tbody tr")
    ]
    assert models == ["large-2", "small-1"]
    # The charts' series: seven days of history and today, percentiles of the runs' durations.
    series = browser.execute_script("return JSON.parse(document.getElementById('usage-data').textContent)")
    assert len(series["days"]) == 30 and sum(series["succeeded"]) == total_runs - 1 and sum(series["failed"]) == 1
    assert series["duration_p95"][-1] >= 0.5 and series["spend_agents"] == ["critic", "writer"]
    assert "globex" not in browser.page_source and "spender" not in browser.page_source
    browser.find_element(By.LINK_TEXT, "7 days").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#usage-dashboard[data-charts-drawn='6']")))
    full_page_screenshot(browser, shots / "usage.png")

    # The runs list has a tokens column; a run's page shows its usage, readable.
    browser.get(
        f"{live_server.url}/admin/agents_app/run/?agent__id__exact={Agent.objects.get(tenant=acme, name='critic').pk}"
    )
    wait.until(ec.presence_of_element_located((By.ID, "result_list")))
    tokens = sorted(cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#result_list td.field-tokens"))
    assert tokens == sorted(f"{p + c:,} ({p:,} + {c:,})" for agent, _, p, c, _ in RUNS if agent == "critic")
    run = Run.objects.filter(tenant=acme, agent__name="critic").order_by("created_at").first()
    browser.get(f"{live_server.url}/admin/agents_app/run/{run.pk}/change/")
    table = wait.until(ec.presence_of_element_located((By.ID, "run-usage")))
    text = table.text
    assert "large-2" in browser.find_element(By.CSS_SELECTOR, ".field-model").text
    assert "prompt tokens 2,600" in text and "completion tokens 420" in text
    assert f"cost {money(cost('large-2', 2600, 420))}" in text
    assert "prompt_tokens" not in browser.find_element(By.ID, "content-main").text  # no raw JSON
    full_page_screenshot(browser, shots / "run.png")

    # A superuser edits a price in the console: the spend shown follows, past days included.
    login(browser, live_server.url, "root")
    browser.get(f"{live_server.url}/admin/agents_app/modelprice/")
    field = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "input[name$='-completion_per_million']")))
    row_model = browser.find_element(By.CSS_SELECTOR, "#result_list tbody tr th").text
    assert row_model == "large-2"
    field.clear()
    field.send_keys("20")
    browser.find_element(By.NAME, "_save").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist li.success")))
    PRICES["large-2"] = (Decimal("2.50"), Decimal("20"))
    try:
        browser.get(f"{live_server.url}/admin/usage/?days=30")
        critic = [
            cell.text for cell in browser.find_elements(By.CSS_SELECTOR, '#usage-by-agent tr[data-key="critic"] td')
        ]
        assert critic[-1] == money(expected()["critic"]["cost"])
    finally:
        PRICES["large-2"] = (Decimal("2.50"), Decimal("10.00"))
    for name in ("usage", "run"):
        assert (shots / f"{name}.png").read_bytes().startswith(b"\x89PNG")
