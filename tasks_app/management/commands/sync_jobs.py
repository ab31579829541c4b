from django.core.management.base import BaseCommand, CommandError

from tasks_app.engines import project_jobs
from tasks_app.models import Job
from tasks_app.models.declared import DeclarationError, sync_declared


class Command(BaseCommand):
    help = (
        "Upsert the jobs declared in TASKHUB['JOBS'] (all or nothing), then rebuild every "
        "engine's schedule from the job table."
    )

    def add_arguments(self, parser):
        parser.add_argument("--prune", action="store_true", help="pause declared jobs that are no longer declared")

    def handle(self, *args, prune=False, **options):
        try:
            counts = sync_declared(prune=prune)
        except DeclarationError as exc:
            raise CommandError(str(exc)) from None
        ids = list(Job.objects.values_list("pk", flat=True))
        broken = project_jobs(ids)
        summary = ", ".join(f"{n} {what}" for what, n in counts.items())
        self.stdout.write(f"declared jobs: {summary}; {len(ids) - len(broken)} job(s) projected into their engines")
        for job, reason in broken:  # every other job is synced; these stay out until fixed
            self.stderr.write(f"skipped job '{job.name}': {reason}")
