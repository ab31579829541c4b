import sys

from django.core.management.base import BaseCommand, CommandError

from tasks_app.models.job_files import JobFileError, import_rows, parse


class Command(BaseCommand):
    help = (
        "Create or update the jobs of a JSON or YAML file (as export_jobs writes it; '-' reads stdin), "
        "all or nothing, and print what changed."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", metavar="FILE", help="a file of jobs, or - for stdin")
        parser.add_argument("--dry-run", action="store_true", help="change nothing; print what would change")
        parser.add_argument("--prune", action="store_true", help="pause (never delete) the jobs not in the file")

    def handle(self, *args, file, dry_run=False, prune=False, **options):
        try:
            result = import_rows(parse(_read(file)), dry_run=dry_run, prune=prune)
        except JobFileError as exc:
            if len(exc.lines) == 1:
                raise CommandError(f"{exc.lines[0]} (nothing changed)") from None
            for line in exc.lines:
                self.stderr.write(line)
            raise CommandError(f"nothing changed: {len(exc.lines)} problems") from None
        for line in result.lines(dry_run):
            self.stdout.write(line)


def _read(path: str) -> str:
    try:
        if path == "-":
            return sys.stdin.read()
        with open(path, encoding="utf-8") as stream:
            return stream.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise CommandError(f"cannot read {path}: {reason}") from None
