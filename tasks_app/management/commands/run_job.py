import contextlib
import getpass
import json
import time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from taskhub import log
from tasks_app import conf, runner
from tasks_app.engines import request_run
from tasks_app.models import Job, RunStatus
from tasks_app.runner import run_requests


class Command(BaseCommand):
    help = (
        "Run a job now, in this process, through the runner (recorded like any run); print its result "
        "(one line; the run's own log records show with -v 2). A paused job runs too: its schedule stays paused."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="the job's name")
        parser.add_argument("--kwargs", help="a JSON object to use instead of the job's kwargs")
        parser.add_argument(
            "--via-engine",
            action="store_true",
            help="queue it on the job's engine (a Celery worker, the APScheduler process) and "
            "wait for the outcome instead of running it here",
        )
        parser.add_argument(
            "--wait",
            type=float,
            default=300,
            metavar="SECONDS",
            help="with --via-engine: how long to wait for the outcome (default 300)",
        )

    def handle(self, *args, name, kwargs=None, via_engine=False, wait=300, verbosity=1, **options):
        job = Job.objects.filter(name=name).first()
        if job is None:
            raise CommandError(f"no job named '{name}'")
        # The answer is one line: the run's own log records go to the log file and its history,
        # not between the lines of the answer (-v 2 shows them).
        with contextlib.nullcontext() if verbosity >= 2 else log.quiet_console():
            run = self._run(job, _json_object(kwargs), via_engine, wait)
        if run.status != RunStatus.SUCCEEDED:
            last_line = (run.error.strip().splitlines() or [run.reason or run.status])[-1]
            raise CommandError(f"run {run.pk} {run.status}: {last_line}")
        if not job.enabled:  # a person may run a paused job on purpose (run_requests.check_runnable)
            self.stderr.write(f"'{job.name}' is paused: it ran once on request; its schedule stays paused")
        self.stdout.write(json.dumps(run.result))

    def _run(self, job, kwargs, via_engine, wait):
        try:
            who = {"requested_by": _requester()}
            if via_engine:
                return _await(request_run(job, kwargs=kwargs, **who), wait)
            return self._run_here(job, run_requests.queue_run(job, kwargs=kwargs, **who))
        except run_requests.RunRefused as exc:
            raise CommandError(str(exc)) from None

    def _run_here(self, job, run):
        while True:
            run = runner.run_slot(job.pk, run.scheduled_for, job.engine, attempt=run.attempt, trigger=run.trigger)
            if run is None or run.status != RunStatus.QUEUED:
                break
            self.stderr.write(f"attempt {run.attempt - 1} failed; retrying at {run.next_attempt_at:%H:%M:%S}")
            time.sleep(max(0.0, (run.next_attempt_at - timezone.now()).total_seconds()))
        if run is None:
            raise CommandError(f"the run of '{job.name}' was not started (see the job's history)")
        return run


def _await(run, seconds: float):
    """Poll the run until it has finished (a retry queued in between is not finished)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.finished:
            return run
        time.sleep(0.2)
    raise CommandError(f"run {run.pk} is still {run.status} after {seconds:g} s (it goes on; see the admin)")


def _json_object(text):
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(f"--kwargs is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise CommandError(f"--kwargs is nested too deeply (at most {conf.kwargs_limits()[0]} levels)") from None
    except ValueError as exc:  # a number too long to read, say
        raise CommandError(f"--kwargs is not valid JSON: {str(exc).split(';')[0]}") from None
    if not isinstance(value, dict):
        raise CommandError("--kwargs must be a JSON object, like '{\"x\": 1}'")
    return value


def _requester() -> str:
    """How the run names who asked: the command, and the login it ran under (if there is one)."""
    try:
        return f"manage.py run_job ({getpass.getuser()})"
    except (KeyError, OSError):  # no name for this uid, in a bare container
        return "manage.py run_job"
