"""Run the APScheduler engine: one process that fires and executes jobs in-process.

This first version starts APScheduler 3 on django-apscheduler's ``DjangoJobStore``
(so ``DjangoJobExecution`` records every fire) and stops cleanly on SIGTERM or
Ctrl-C. Projecting ``Job`` rows into it, the leader lock, live reload and the
heartbeat arrive with the APScheduler engine.
"""

import logging
import signal

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
from django.core.management.base import BaseCommand
from django_apscheduler.jobstores import DjangoJobStore

log = logging.getLogger("tasks_app.apscheduler")


class Command(BaseCommand):
    help = "Run the APScheduler engine (exactly one per deployment)."

    def add_arguments(self, parser):
        parser.add_argument("--workers", type=int, default=10, help="threads that execute fires (default 10)")

    def handle(self, *args, workers, **options):
        scheduler = BlockingScheduler(
            timezone="UTC",
            jobstores={"default": DjangoJobStore()},
            executors={"default": ThreadPoolExecutor(max_workers=workers)},
        )

        def stop(signum, frame):
            log.info("scheduler stopping", extra={"signal": signal.Signals(signum).name})
            scheduler.shutdown(wait=True)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        log.info("scheduler starting", extra={"engine": "apscheduler", "workers": workers})
        scheduler.start()
        log.info("scheduler stopped", extra={"engine": "apscheduler"})
