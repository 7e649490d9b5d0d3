"""The crewai extra's tests run in CrewAI's own environment (requirements/crewai.txt); its live
test lends the live tests' queue (gunicorn, a Celery worker) started from that environment."""

from tests.live.queue import start_queue

__all__ = ["start_queue"]
