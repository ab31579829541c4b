"""A what-if for ``celery_run_path``: taskhub's settings with ``CELERY_DB_REUSE_MAX`` set.

Without it, Celery's Django fixup closes every database connection before and after each
task, so each run opens a new Postgres session. Not the project's settings: a worker started
with ``DJANGO_SETTINGS_MODULE=bench.settings_db_reuse`` shows what reuse would change.
"""

from taskhub.settings import *  # noqa: F403

CELERY_DB_REUSE_MAX = 1000
