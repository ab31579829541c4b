"""The Celery tasks: the runs of jobs, and ad-hoc handler calls. All go through the runner.

``taskhub.run_job(job_id, scheduled_for, attempt, trigger)`` carries ids and the slot only,
never a model; ``taskhub.run_slots(slots)`` carries several of them (a tick's, packed by beat).
Their history is the ``JobRun`` row, so they store no Celery result (the django-db result
backend costs more than most handlers). ``taskhub.run_handler`` is for ad-hoc calls without
a job; its result goes to django-celery-results.
"""

import datetime as dt
import logging

from celery import shared_task
from celery.signals import worker_init, worker_process_init, worker_process_shutdown, worker_ready
from django.db import connections
from django.utils import timezone

from tasks_app import runner
from tasks_app.engines import get_engine
from tasks_app.models import Trigger
from tasks_app.runner import Slot, loop

log = logging.getLogger("tasks_app.engines.celery.tasks")
RESULTS = "results"  # the keyword that receives what ran before a call_with_results (client.py)


@shared_task(name="taskhub.run_job", bind=True, ignore_result=True)
def execute_slot(self, job_id: int, scheduled_for: str, attempt: int = 1, trigger: str = Trigger.SCHEDULE):
    slot = dt.datetime.fromisoformat(scheduled_for)
    get_engine("celery").execute(job_id, slot, attempt=attempt, trigger=trigger, task_id=self.request.id)


@shared_task(name="taskhub.run_slots", bind=True, ignore_result=True)
def execute_slots(self, slots: list[dict]):
    """Several slots of one tick (beat packs them): one claim, the handlers side by side on this process's loop."""
    batch = [
        Slot(
            s["job_id"],
            dt.datetime.fromisoformat(s["scheduled_for"]),
            s.get("attempt", 1),
            s.get("trigger", Trigger.SCHEDULE),
            self.request.id or "",
        )
        for s in slots
    ]
    get_engine("celery").execute_many(batch)


@shared_task(name="taskhub.run_handler", bind=True)
def run_handler(self, handler: str, kwargs: dict | None = None):
    """Call a registered handler without a job; the return value is the Celery result."""
    return runner.call_handler(handler, kwargs or {}, task_id=self.request.id)


@shared_task(name="taskhub.run_handler_with_results", bind=True)
def run_handler_with_results(self, results, handler: str, kwargs: dict | None = None):
    """``taskhub.run_handler`` that also passes what ran before it (Celery's first argument) as ``results``."""
    return runner.call_handler(handler, {**(kwargs or {}), RESULTS: results}, task_id=self.request.id)


@worker_init.connect(dispatch_uid="taskhub_worker_init")
def _before_pool(**kwargs):
    # Close the parent's database connections before the pool forks: a child that
    # inherited a socket and closed it would end the parent's session too.
    connections.close_all()


@worker_process_init.connect(dispatch_uid="taskhub_worker_process_init")
def _start_process(**kwargs):
    loop.get_loop()  # one event loop per pool process, kept for every run it executes


@worker_process_shutdown.connect(dispatch_uid="taskhub_worker_process_shutdown")
def _stop_process(**kwargs):
    loop.shutdown()
    connections.close_all()


@worker_ready.connect(dispatch_uid="taskhub_worker_ready")
def _ready(sender=None, **kwargs):
    log.info(
        "worker ready",
        extra={"engine": "celery", "hostname": getattr(sender, "hostname", ""), "at": timezone.now().isoformat()},
    )
