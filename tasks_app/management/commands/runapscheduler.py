"""Run the APScheduler engine (exactly one active per deployment; more wait as standbys)."""

import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from tasks_app import conf
from tasks_app.engines import long_lived
from tasks_app.engines.apscheduler.manager import SchedulerManager
from tasks_app.engines.apscheduler.service import SchedulerService

MAX_WORKERS = 1000
MAX_GRACE_SECONDS = 86_400  # a thread pool of 0 raised, and a grace past the clock's range would too


class Command(BaseCommand):
    help = (
        "Run the APScheduler engine: fire and execute the jobs whose engine is 'apscheduler'. "
        "A second instance waits as a standby and takes over when the leader dies."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--workers",
            type=int,
            default=conf.get("APSCHEDULER_WORKERS"),
            help="threads that run fires (default %(default)s)",
        )
        parser.add_argument(
            "--grace",
            type=float,
            default=conf.get("SHUTDOWN_GRACE_SECONDS"),
            help="seconds in-flight runs may finish after SIGTERM (default %(default)s)",
        )

    def handle(self, *args, workers, grace, **options):
        if not (1 <= workers <= MAX_WORKERS and 0 <= grace <= MAX_GRACE_SECONDS):
            raise CommandError(f"--workers must be 1 to {MAX_WORKERS} and --grace 0 to {MAX_GRACE_SECONDS} seconds")
        long_lived.dedicate()
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        SchedulerService(SchedulerManager(workers=workers), stop).serve(grace=grace)
