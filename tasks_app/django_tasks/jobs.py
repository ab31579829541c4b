"""The job that carries a Django task's runs: one per task, engine, queue and priority, paused.

``job_for`` finds or creates it (named ``task.<engine>.<dotted path>``, ``-q-<queue>`` and ``-p<priority>``
when not the defaults). It never fires on a schedule (paused); its kwargs are an example that fits the
task, each run carries its own. What it is not: it queues no run (``backend``).
"""

import hashlib

from django.db import IntegrityError, transaction
from django_tasks.base import DEFAULT_TASK_PRIORITY, Task
from django_tasks.exceptions import InvalidTaskError

from tasks_app.handlers.registry import registry
from tasks_app.models import Job, ScheduleType

MAX_RUNNING = 1000  # a task's runs do not wait for each other: the workers' concurrency is the limit


def job_for(task: Task, engine: str, alias: str) -> Job:
    priority = job_priority(task.priority)
    name = job_name(engine, task)
    job = Job.objects.filter(name=name).first()
    if job is None:
        try:
            with transaction.atomic():
                job = Job.objects.create(
                    name=name,
                    description=f"Runs of the Django task {task.module_path} (backend {alias!r}); "
                    "each run carries its own arguments, these kwargs are an example.",
                    handler=task.module_path,
                    kwargs=registry.get(task.module_path).example_kwargs(),
                    engine=engine,
                    queue=task.queue_name,
                    priority=priority,
                    schedule_type=ScheduleType.INTERVAL,
                    interval_seconds=86400,
                    enabled=False,  # never fires on a schedule: only the runs enqueued
                    max_running=MAX_RUNNING,
                )
        except IntegrityError:  # another process created it first
            job = Job.objects.get(name=name)
    if job.handler != task.module_path:
        raise InvalidTaskError(f"job {name!r} exists and runs {job.handler!r}, not the task {task.module_path!r}")
    return job


def job_priority(priority: int) -> int:
    """The framework's -100 (last) .. 100 (first) as a job's 9 (last) .. 0 (first); 0 is 5, the job default."""
    return 5 if priority == DEFAULT_TASK_PRIORITY else round((100 - priority) * 9 / 200)


def job_name(engine: str, task: Task) -> str:
    name = f"task.{engine}.{task.module_path}".lower()
    if task.queue_name != "default":
        name += f"-q-{task.queue_name}"
    if task.priority != DEFAULT_TASK_PRIORITY:
        name += f"-p{job_priority(task.priority)}"
    if len(name) > 100:
        name = f"{name[:89]}-{hashlib.sha1(name.encode()).hexdigest()[:10]}"
    return name
