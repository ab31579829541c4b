"""A run read as the framework's ``TaskResult``: status, return value, errors, times, attempts.

| run status | ``TaskResultStatus`` |
|---|---|
| queued | READY |
| running | RUNNING |
| succeeded | SUCCESSFUL |
| failed, timed_out, cancelled, skipped | FAILED |

Each failed attempt (earlier ones from ``JobRun.attempts``, then the current one) is one ``TaskError``:
its exception class path from the traceback's last line (``builtins.`` for a built-in exception;
``builtins.TimeoutError`` for a timeout, ``taskhub`` reasons for a cancel or skip), and the traceback.
"""

import datetime as dt
import re

from django_tasks.base import Task, TaskError, TaskResult, TaskResultStatus

from tasks_app.models import JobRun, RunStatus

STATUSES = {
    RunStatus.QUEUED: TaskResultStatus.READY,
    RunStatus.RUNNING: TaskResultStatus.RUNNING,
    RunStatus.SUCCEEDED: TaskResultStatus.SUCCESSFUL,
}
FAILED_ATTEMPT = {RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.CANCELLED, RunStatus.SKIPPED}
# The last line of a traceback: "pkg.mod.SomeError: message" (a built-in's has no module).
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*)(?::|$)")


def from_run(run: JobRun, task: Task, backend: str) -> TaskResult:
    earlier = [a for a in run.attempts if isinstance(a, dict)]
    started = [a.get("started_at") for a in earlier if a.get("started_at")]
    workers = [a.get("worker") or "" for a in earlier]
    if run.started_at is not None:
        workers.append(run.worker)
    errors = [_error(a.get("status"), a.get("error") or "") for a in earlier if a.get("status") in FAILED_ATTEMPT]
    if run.status in FAILED_ATTEMPT:
        errors.append(_error(run.status, run.error or run.reason))
    result = TaskResult(
        task=task,
        id=str(run.pk),
        status=STATUSES.get(run.status, TaskResultStatus.FAILED),
        enqueued_at=run.created_at,
        started_at=dt.datetime.fromisoformat(started[0]) if started else run.started_at,
        finished_at=run.finished_at if run.finished else None,
        last_attempted_at=run.started_at,
        args=[],
        kwargs=run.kwargs,
        backend=backend,
        errors=errors,
        worker_ids=workers,
    )
    if run.status == RunStatus.SUCCEEDED:
        object.__setattr__(result, "_return_value", run.result)  # a frozen dataclass: as the framework's backends do
    return result


def _error(status: str, text: str) -> TaskError:
    if status == RunStatus.TIMED_OUT:
        return TaskError(exception_class_path="builtins.TimeoutError", traceback=text)
    if status in (RunStatus.CANCELLED, RunStatus.SKIPPED):
        return TaskError(exception_class_path="asyncio.CancelledError", traceback=text)
    return TaskError(exception_class_path=exception_class_path(text), traceback=text)


def exception_class_path(traceback: str) -> str:
    """The raised exception's class as a dotted path, from a formatted traceback's last line."""
    lines = traceback.strip().splitlines()
    match = _EXCEPTION_LINE.match(lines[-1]) if lines else None
    if match is None or "Traceback" in lines[-1]:
        return "builtins.Exception"  # not a traceback (a message of taskhub's own: the task never started)
    name = match.group(1)
    return name if "." in name else f"builtins.{name}"
