from django.core.management.base import BaseCommand, CommandError

from tasks_app.models.job_files import FORMATS, JobFileError, export_text


class Command(BaseCommand):
    help = "Write every job (or the ones named) to stdout as JSON or YAML, sorted by name, without ids."

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="*", metavar="NAME", help="only these jobs")
        parser.add_argument("--format", choices=FORMATS, default="json", help="json (default) or yaml")

    def handle(self, *args, names=(), format="json", **options):
        try:
            self.stdout.write(export_text(names, format), ending="")
        except JobFileError as exc:
            raise CommandError(str(exc)) from None
