from django.core.management.base import BaseCommand, CommandError

from tasks_app import conf
from tasks_app.models.retention import MAX_BATCH_SIZE, MAX_DAYS, delete_runs_older_than


class Command(BaseCommand):
    help = "Delete finished run history older than a number of days, in batches."

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            type=int,
            dest="days",
            metavar="DAYS",
            help="age in days (default: TASKHUB['RUN_RETENTION_DAYS'], 30 unless set)",
        )
        parser.add_argument("--batch-size", type=int, default=1000)

    def handle(self, *args, days, batch_size, **options):
        days = conf.get("RUN_RETENTION_DAYS") if days is None else days
        if not (0 <= days <= MAX_DAYS and 1 <= batch_size <= MAX_BATCH_SIZE):
            raise CommandError(f"--older-than must be 0 to {MAX_DAYS} and --batch-size 1 to {MAX_BATCH_SIZE}")
        deleted = delete_runs_older_than(days, batch_size)
        self.stdout.write(f"deleted {deleted} run(s) older than {days} day(s)")
