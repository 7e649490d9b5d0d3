"""infra.rate_window: a count per window in the cache, one increment per event."""

from __future__ import annotations

import time

import pytest
from django.core.cache import cache

from infra.rate_window import window_count, window_peek, window_wait


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()
    yield
    cache.clear()


def test_events_are_counted_in_the_window_the_first_one_opened() -> None:
    assert window_peek("k") == 0
    assert [window_count("k", 60) for _ in range(3)] == [1, 2, 3]
    assert window_peek("k") == 3 and window_peek("other") == 0
    assert 58 <= window_wait("k", 60) <= 60


def test_the_cache_keeps_a_count_not_every_event() -> None:
    for _ in range(500):
        window_count("k", 60)
    assert cache.get("k:n") == 500  # one integer, whatever the rate (DRF's default keeps 500 timestamps)


def test_a_closed_window_opens_a_new_one() -> None:
    window_count("k", 1)
    window_count("k", 1)
    time.sleep(1.2)
    assert window_peek("k") == 0
    assert window_count("k", 1) == 1
