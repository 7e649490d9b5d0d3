"""The OpenAPI document is exact: schemathesis generates requests from the live ``/api/schema/``
(valid ones and invalid ones) and checks every answer against it, on the platform as deployed
(gunicorn, a Celery worker, the Redis store).

Its checks: no 500 (``not_a_server_error``); every status and body is documented
(``status_code_conformance``, ``response_schema_conformance``; a streamed answer is checked event
by event against the documented event); what the schema calls valid is accepted and what it calls
invalid is refused (``positive_data_acceptance``, ``negative_data_rejection``); the key is
required (``ignored_auth``); what was deleted stays gone (``use_after_free``, in the stateful
phase, which chains operations through the ids and ``Location`` headers their answers give).

It runs schemathesis's command line (``schemathesis run``: the examples, coverage, fuzzing and
stateful phases) rather than its pytest plugin, whose lazy loader of a schema served by a fixture
reaches into a private attribute of pytest's nodes that pytest 9.2 no longer has. Bounded in
time: a few examples per operation (``SCHEMATHESIS_EXAMPLES`` raises it) and a timeout on each
request: about a minute and a half on two cores.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests import services
from tests.live.queue import Queue

pytestmark = pytest.mark.slow

CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "positive_data_acceptance",
    "ignored_auth",
    "use_after_free",
]
CONFIGURED = {"not_a_server_error", "negative_data_rejection"}  # in CONFIG, with their expected statuses
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "20"))
SCENARIOS = int(os.environ.get("SCHEMATHESIS_SCENARIOS", "100"))

CONFIG = """
[auth.openapi.ApiKey]
bearer = "{key}"

[checks]
enabled = false
{enabled}

# A server error is a 500. 502 (the agent's model server failed: agents made here name model
# servers that do not exist), 503 (the store or broker down) and 504 (a run over its time limit)
# are answers of the contract, each documented where it may come.
[checks.not_a_server_error]
enabled = true
expected-statuses = ["2xx", "3xx", "4xx", "502", "503", "504"]

# The contract answers 413 for a message over the size limit: a refusal like the others.
[checks.negative_data_rejection]
enabled = true
expected-statuses = ["400", "401", "404", "413"]

# A valid body whose agent name is taken, or whose config names a secret or an agent the tenant
# does not have, is a 400 naming the field (CONTRACT.md: an invalid body is a 400), which no schema
# can foresee: the two operations where a valid body may be refused so. (A PATCH's config without a
# framework is checked against the agent's own, which the schema cannot know either.)
[[operations]]
include-operation-id = "agents_create"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400"]

[[operations]]
include-operation-id = "agents_update"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "404", "409"]

# A valid schedule whose agent the tenant does not have, whose cron does not parse (the schema
# says a string of at most 255 characters), whose time zone is unknown or whose `at` is past is a
# 400 naming the field; one over the tenant's limit of schedules a 403.
[[operations]]
include-operation-id = "schedules_create"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "403"]

[[operations]]
include-operation-id = "schedules_update"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "404"]
# GET /usage: a `since` after `until`, or a day before year 1, is a 400 naming it, which the
# parameters' formats alone cannot say.
[[operations]]
include-operation-id = "usage"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400"]

[generation]
max-examples = {examples}

# Scenarios of chained calls (create a session with a run, read it, delete it, read it again...).
[phases.stateful.generation]
max-examples = {scenarios}
"""


def test_the_api_answers_as_its_schema_says(start_queue, tmp_path: Path) -> None:
    queue: Queue = start_queue(
        "redis",
        workers=1,
        env={
            # Generated traffic is fast and full of bad keys: neither the tenant's rate nor the
            # lockout of an address after failed authentications may turn answers into 429s.
            "AK_API__THROTTLE_RATE": "1000000/min",
            "AK_API__AUTH_FAILURE_LIMIT": "1000000",
            # An echo agent may be made with a delay of up to 60 s: its runs stop (504) before.
            "AK_RUN__TIME_LIMIT": "5",
        },
    )
    enabled = "\n".join(f"{name}.enabled = true" for name in CHECKS if name not in CONFIGURED)
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG.format(key=queue.platform.key, enabled=enabled, examples=EXAMPLES, scenarios=SCENARIOS))
    report = tmp_path / "report.json"
    run = subprocess.run(
        [
            str(services.VENV_BIN / "schemathesis"),
            f"--config-file={config}",
            "run",
            f"{queue.platform.url}/api/schema/?format=json",
            "--request-timeout=30",
            # One at a time: generating in several threads at once meets a race of Python 3.11's
            # ``ast`` (which Hypothesis uses to describe strategies) and fails with a SystemError.
            "--workers=1",
            "--report=json",
            f"--report-json-path={report}",
            "--no-color",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-30000:] + run.stderr[-3000:]
    cases = json.loads(report.read_text())["test_cases"]
    print(f"\nschemathesis: {cases['generated']} cases generated, {cases['with_failures']} with failures")
    assert cases["generated"] >= 14 * EXAMPLES and cases["with_failures"] == cases["errored"] == 0
