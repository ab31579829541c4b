import json
import time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from tasks_app import runner
from tasks_app.models import Job, RunStatus


class Command(BaseCommand):
    help = "Run a job now, in this process, through the runner (recorded like any run); print its result."

    def add_arguments(self, parser):
        parser.add_argument("name", help="the job's name")
        parser.add_argument("--kwargs", help="a JSON object to use instead of the job's kwargs")

    def handle(self, *args, name, kwargs=None, **options):
        job = Job.objects.filter(name=name).first()
        if job is None:
            raise CommandError(f"no job named '{name}'")
        try:
            run = runner.queue_run(job, kwargs=_json_object(kwargs))
        except runner.RunRefused as exc:
            raise CommandError(str(exc)) from None
        while True:
            run = runner.run_job(job.pk, run.scheduled_for, job.engine, attempt=run.attempt, trigger=run.trigger)
            if run is None or run.status != RunStatus.QUEUED:
                break
            self.stderr.write(f"attempt {run.attempt - 1} failed; retrying at {run.next_attempt_at:%H:%M:%S}")
            time.sleep(max(0.0, (run.next_attempt_at - timezone.now()).total_seconds()))
        if run is None:
            raise CommandError(f"the run of '{name}' was not started (see the job's history)")
        if run.status != RunStatus.SUCCEEDED:
            last_line = (run.error.strip().splitlines() or [run.reason or run.status])[-1]
            raise CommandError(f"run {run.pk} {run.status}: {last_line}")
        self.stdout.write(json.dumps(run.result))


def _json_object(text):
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(f"--kwargs is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(value, dict):
        raise CommandError("--kwargs must be a JSON object, like '{\"x\": 1}'")
    return value
