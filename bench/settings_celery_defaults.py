"""The stock peer's settings for ``celery_run_path``: taskhub's settings with Celery's own defaults back.

A user who installs Celery with django-celery-results gets no ``CELERY_DB_REUSE_MAX`` (so the
Django fixup closes every database connection before and after each task, and each task opens a
new Postgres session) and no ``result_extended`` (a result row without the task's name and
arguments). The deployment's shape stays as in the other rows (prefork, prefetch 1, acks_late,
JSON), so the comparison is of the per-task cost only.
"""

from taskhub.settings import *  # noqa: F403

del CELERY_DB_REUSE_MAX  # noqa: F821
CELERY_RESULT_EXTENDED = False
