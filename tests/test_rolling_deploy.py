"""A rolling deploy: while the new release migrates and starts, the previous one still writes rows.

The previous release's code (and raw SQL written for it: a bench, a data script) inserts rows
without the columns added since. Every column added after it must therefore be nullable or
have a default *in the database* (``db_default``), or such an insert fails on NOT NULL. The
previous release's schema is read from the migrations themselves.
"""

import pytest
from django.apps import apps
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.models import NOT_PROVIDED

from tests.factories import job_factory

PREVIOUS_RELEASE = ("tasks_app", "0007_jobrun_lane")


def added_since_previous_release():
    old = MigrationLoader(None, ignore_no_migrations=True).project_state(PREVIOUS_RELEASE).apps
    for model in apps.get_app_config("tasks_app").get_models():
        try:
            known = {f.column for f in old.get_model("tasks_app", model.__name__)._meta.concrete_fields}
        except LookupError:
            continue  # a new table: the previous release does not write it
        yield from ((model, f) for f in model._meta.concrete_fields if f.column not in known)


def test_every_column_added_since_the_previous_release_has_a_database_default_or_is_nullable():
    added = list(added_since_previous_release())
    assert added, "nothing added since the previous release: move PREVIOUS_RELEASE forward"
    missing = [f"{m.__name__}.{f.name}" for m, f in added if not f.null and f.db_default is NOT_PROVIDED]
    assert missing == []


@pytest.mark.django_db
def test_a_row_written_as_the_previous_release_writes_it_is_accepted():
    job = job_factory()
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote('tasks_app_jobrun')} (job_id, engine, status, {quote('trigger')}, scheduled_for,"
            " kwargs, created_at, attempt, attempts, error, reason, worker, celery_task_id, progress_message,"
            " cancel_requested, duplicate_claims) VALUES (%s, 'apscheduler', 'queued', 'schedule', %s, '{}', %s,"
            " 1, '[]', '', '', '', '', '', false, 0)",
            [job.pk, job.created_at, job.created_at],
        )
    assert job.runs.get().requested_by == ""
