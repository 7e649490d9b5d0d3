"""The pieces usage is read with: a price table's cost (cached tokens at their own price), the
timing buckets and their percentiles, and a run's end with cached tokens, through ``GET /usage``."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from agents_app.models import ModelPrice
from agents_app.usage import histogram
from agents_app.usage.prices import cost_sum, tokens_cost
from agents_app.usage.record import RunFacts, usage_add


def price(cached: str | None = None) -> ModelPrice:
    return ModelPrice(
        model="m",
        prompt_per_million=Decimal("3"),
        completion_per_million=Decimal("15"),
        cached_per_million=None if cached is None else Decimal(cached),
    )


def test_a_cost_prices_cached_prompt_tokens_apart() -> None:
    assert tokens_cost(price(), prompt=1000, completion=100) == Decimal("0.0045")
    assert tokens_cost(price("0.3"), prompt=1000, completion=100, cached=800) == Decimal("0.00234")
    assert tokens_cost(price("0.3"), prompt=10, completion=0, cached=50) == Decimal("0.000003")  # at most prompt
    assert tokens_cost(None, prompt=0, completion=0) == 0
    assert tokens_cost(None, prompt=1, completion=0) is None
    assert cost_sum([Decimal(1), Decimal("0.5")]) == Decimal("1.5") and cost_sum([Decimal(1), None]) is None


def test_percentiles_are_the_upper_bounds_of_their_buckets() -> None:
    counts: list[int] = []
    for seconds in [0.2] * 90 + [3.0] * 9 + [7200.0]:
        counts = histogram.added(counts, seconds)
    assert histogram.percentile(counts, 0.5) == 0.25
    assert histogram.percentile(counts, 0.95) == 5.0
    assert histogram.percentile(counts, 1.0) == histogram.BOUNDS[-1]  # past the largest bound
    assert histogram.percentile([0] * histogram.SIZE, 0.5) is None
    assert histogram.merged([counts, None, counts])[histogram.bucket(0.2)] == 180


@pytest.mark.django_db(transaction=True)
def test_cached_tokens_are_counted_and_priced(alice) -> None:
    ModelPrice.objects.create(model="m", prompt_per_million=3, completion_per_million=15, cached_per_million="0.3")
    ended = timezone.now()
    facts = RunFacts(alice.tenant.pk, "gpt", "m", "s-1", ended - timedelta(seconds=2), ended - timedelta(seconds=1))
    usage = {"prompt_tokens": 1000, "completion_tokens": 100, "cached_tokens": 800}
    for _ in range(2):
        usage_add(facts, changes={"status": "succeeded", "finished_at": ended, "usage": usage})
    total = alice.get("/usage?group_by=agent").json()["total"]
    assert (total["runs"], total["prompt_tokens"], total["completion_tokens"]) == (2, 2000, 200)
    assert Decimal(str(total["cost"])) == 2 * Decimal("0.00234")
