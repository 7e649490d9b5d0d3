"""Fixtures of the live tests: the queue (gunicorn, Celery workers, beat) lives in ``queue.py``."""

from tests.live.queue import start_queue

__all__ = ["start_queue"]
