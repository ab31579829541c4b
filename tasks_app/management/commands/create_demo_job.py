import json

from django.core.management.base import BaseCommand

from tasks_app.models.declared import create_demo_job


class Command(BaseCommand):
    help = (
        "Create the demo job 'demo-add-numbers' that the README's API examples trigger "
        "(bin/setup does on a fresh database); an existing job of that name is left alone."
    )

    def handle(self, *args, **options):
        job, created = create_demo_job()
        verb = "created" if created else "exists (left as it is)"
        self.stdout.write(
            f"demo job '{job.name}' {verb}: {job.handler} {json.dumps(job.kwargs)}; {job.schedule_in_words()}"
        )
