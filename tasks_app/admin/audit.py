"""The admin's audit trail: what a person's action changed, as Django's own ``LogEntry`` rows.

They show in "Recent actions" and on each object's History page, next to the entries Django
writes for edits. An action on a run (cancel, retry) is written to the run and to its job, so
a job's History page has its edits and every action on it or its runs, and keeps them when
retention deletes the runs.

What it is not: runs the engines or the API start have no person and no entry here; a run
records who asked for it itself (``JobRun.requested_by``).
"""

from django.contrib.admin.models import ADDITION, CHANGE, LogEntry


def log(request, objs, message: str, flag: int = CHANGE) -> None:
    """One entry per object, each saying ``message``; one INSERT for many objects."""
    objs = list(objs)
    if objs:
        LogEntry.objects.log_actions(request.user.pk, objs, flag, message)


def log_each(request, entries, flag: int = CHANGE) -> None:
    """An entry per ``(obj, message)`` pair."""
    for obj, message in entries:
        log(request, [obj], message, flag)


def log_added(request, obj, message: str) -> None:
    log(request, [obj], message, ADDITION)


def requester(request) -> str:
    """How a run a person asked for names them."""
    return f"user {request.user.get_username()}"
