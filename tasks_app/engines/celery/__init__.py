"""The Celery engine: beat schedules, workers on the broker execute.

``engine`` is the ``CeleryEngine`` (django-celery-beat rows derived from jobs, delivery of
runs), ``messages`` what a run's Celery message holds, ``beat_rows`` the projection into
django-celery-beat's tables, ``beat`` the ``TaskhubScheduler`` that beat runs (slots, leader
lock, live edits) with ``beat_delivery``, ``broker_watch`` and ``sent_slots``, ``tasks`` the
Celery tasks workers run, and ``client`` ad-hoc handler calls by name.

What it is not: it never calls a handler itself; every run goes through the runner.
"""

from tasks_app.engines.celery.engine import CeleryEngine

__all__ = ["CeleryEngine"]
