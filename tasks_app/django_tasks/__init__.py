"""taskhub as a backend of Django's task framework (the ``django-tasks`` package).

``TASKS = {"default": {"BACKEND": "tasks_app.django_tasks.TaskhubBackend", "OPTIONS": {"ENGINE": "celery"}}}``
sends every ``@task`` enqueued with ``.enqueue(...)`` through the engine named by ``ENGINE``
(``celery`` or ``apscheduler``) and the runner, as a run in the one history.

- ``backend``: ``TaskhubBackend`` — ``enqueue``, ``get_result`` (from any process), ``validate_task``, ``check``.
- ``registration``: the ``@task`` functions of the modules in ``TASKHUB_TASK_MODULES``, registered as
  handlers under their dotted path (so a job in the admin can name one too).
- ``jobs``: the paused job that carries a task's runs (per engine, queue and priority).
- ``results``: a ``JobRun`` read as the framework's ``TaskResult``.

What it is not: an engine or a runner. It queues runs and reads them; the engines deliver them and
the runner calls the task function, as for any handler.
"""

from tasks_app.django_tasks.backend import TaskhubBackend

__all__ = ["TaskhubBackend"]
