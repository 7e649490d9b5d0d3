"""Counting events in a window that opens with the first one: O(1) per event, shared through the cache.

A window is two cache keys that expire with it: ``<key>:n`` (the count, raised atomically with
``cache.incr``, which Redis does in one round trip) and ``<key>:since`` (when it opened, for a
``Retry-After``). The first event after a window closed opens the next one. Unlike DRF's default
throttle (every request's timestamp, read and written), its cost does not grow with the rate.
"""

from __future__ import annotations

import time

from django.core.cache import cache


def window_count(key: str, window: float) -> int:
    """Count one more event under ``key``; the events counted in its window, this one included
    (0 when the cache is down: django-redis, told to, ignores its errors, and nothing is counted)."""
    try:
        count = cache.incr(f"{key}:n")
    except ValueError:  # no open window: this event opens one (add: a concurrent opener wins)
        timeout = max(1, int(window))
        cache.add(f"{key}:since", time.time(), timeout=timeout)
        cache.add(f"{key}:n", 0, timeout=timeout)
        try:
            count = cache.incr(f"{key}:n")
        except ValueError:  # the window closed between the calls: count this one in a new one
            cache.set(f"{key}:n", 1, timeout=timeout)
            count = 1
    return count or 0


def window_peek(key: str) -> int:
    """The events counted in ``key``'s open window (0 when none is open, or the cache is down)."""
    return cache.get(f"{key}:n") or 0


def window_wait(key: str, window: float) -> int:
    """Whole seconds until ``key``'s open window closes (at least 1)."""
    since = cache.get(f"{key}:since") or time.time()
    return max(1, int(since + window - time.time()))
