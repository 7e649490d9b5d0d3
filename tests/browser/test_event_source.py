"""A browser follows a queued run with ``EventSource`` (headless Chromium), as a web page would.

The platform runs as deployed (gunicorn, a Celery worker over Redis). The page is one of the
platform's own (``/health``), so that ``EventSource`` is same-origin; its requests carry the API key
the way a deployment's proxy or an extension would add it (Chromium's ``Network.setExtraHTTPHeaders``):
``EventSource`` itself cannot send an ``Authorization`` header. It sends ``Accept:
text/event-stream``, gets the run's events to its end, reconnects by itself with
``Last-Event-ID`` once the server closes the stream, and stops on the ``204`` it is answered then.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from selenium.webdriver.support.ui import WebDriverWait

from sessions_app.stores.base import SessionKey
from tests.live.queue import Queue

pytestmark = pytest.mark.slow

METRICS_TOKEN = "event-source-metrics-token-0123456789abcdef"

#: Opens an EventSource on arguments[0], keeping what it sees in ``window.followed``; ``followed.ended``
#: resolves once it is closed for good and a while has passed (no event may come after that).
OPEN = """
const path = arguments[0];
const followed = window.followed = {seen: [], states: [], opened: 0};
const source = followed.source = new EventSource(path);
source.onopen = () => { followed.opened += 1; };
for (const kind of ["run", "delta", "done", "error", "cancelled"]) {
  source.addEventListener(kind, (e) => followed.seen.push({id: e.lastEventId, kind: kind, data: JSON.parse(e.data)}));
}
followed.ended = new Promise((resolve) => {
  source.onerror = () => {
    followed.states.push(source.readyState);
    // Closed for good: wait longer than a reconnection would take, to see that nothing more comes.
    if (source.readyState === EventSource.CLOSED) setTimeout(resolve, 4000);
  };
});
"""

#: Calls back with what ``OPEN``'s EventSource saw once it ended, or after arguments[0] ms.
ENDED = """
const [patience, callback] = arguments;
const followed = window.followed;
const report = (why) => callback({
  why: why, seen: followed.seen, states: followed.states, opened: followed.opened, state: followed.source.readyState,
});
followed.ended.then(() => report("closed"));
setTimeout(() => report("patience"), patience);
"""


def http_answers(queue: Queue) -> dict[tuple[str, str], float]:
    """``ak_http_requests_total`` by (method, status), over the server's processes."""
    response = requests.get(
        f"{queue.platform.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    answers: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "ak_http_requests_total":
                answers[(sample.labels["method"], sample.labels["status"])] = sample.value
    return answers


def test_an_event_source_follows_a_queued_run_to_its_end_then_stops(
    start_queue, make_store, browser, tmp_path: Path
) -> None:
    metrics = {"AK_METRICS__TOKEN": METRICS_TOKEN, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    queue: Queue = start_queue("redis", workers=1, env=metrics)  # the metrics of every web process
    session_id, message = f"es-{uuid.uuid4().hex[:6]}", "followed by a browser"
    # The session is held, as by another run: the run stays queued until the browser follows it.
    held = make_store("redis").acquire(
        SessionKey(tenant=queue.platform.tenant, session_id=session_id), lease=120, wait=0
    )
    run_id = queue.enqueue("echo", message, session_id)["run_id"]

    browser.get(f"{queue.platform.url}/health")  # a page of the platform's origin
    browser.execute_cdp_cmd("Network.enable", {})
    authorization = {"Authorization": f"Bearer {queue.platform.key}"}
    browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": authorization})
    before = http_answers(queue)
    browser.execute_script(OPEN, f"/runs/{run_id}/events")
    WebDriverWait(browser, 30).until(lambda driver: driver.execute_script("return window.followed.opened") == 1)
    assert queue.run(run_id)["status"] in ("queued", "running")  # not started: its session is still held
    assert browser.execute_script("return window.followed.seen") == []
    held.release()
    browser.set_script_timeout(120)
    outcome = browser.execute_async_script(ENDED, 90_000)

    assert outcome["why"] == "closed", outcome
    kinds = [event["kind"] for event in outcome["seen"]]
    reply = f"echo[turns=1]: {message}"
    assert kinds == ["run", *["delta"] * len(reply.split(" ")), "done"], outcome  # a delta per word, one done
    assert [event["id"] for event in outcome["seen"]] == [str(i) for i in range(1, len(kinds) + 1)]  # in order
    deltas = "".join(event["data"]["text"] for event in outcome["seen"] if event["kind"] == "delta")
    assert deltas == outcome["seen"][-1]["data"]["result"] == reply
    assert outcome["seen"][0]["data"]["run_id"] == run_id
    # The stream ended; EventSource reconnected on its own (CONNECTING, with the done's id as Last-Event-ID), was
    # answered 204, and stopped (CLOSED): one stream opened, no second done.
    assert outcome["states"] == [0, 2] and outcome["state"] == 2 and outcome["opened"] == 1, outcome
    after = http_answers(queue)
    assert after.get(("GET", "204"), 0) - before.get(("GET", "204"), 0) == 1
    assert queue.run(run_id)["status"] == "succeeded"
