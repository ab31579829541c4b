"""Admin actions on runs: cancel and retry, each written to the run's and its job's audit trail.

A retry is a new run in its own slot (``actions.queue_runs``, trigger ``retry``); a cancel goes
through ``run_requests.request_cancel``. What it is not: nothing here edits a run's outcome.
"""

from django.contrib import admin, messages
from django.db import transaction

from tasks_app.admin import audit
from tasks_app.admin.actions import counted, queue_runs
from tasks_app.admin.display import LIVE
from tasks_app.models import RunStatus, Trigger
from tasks_app.runner import run_requests

CANCELLED = {
    RunStatus.QUEUED: "it was queued: cancelled",
    RunStatus.RUNNING: "it was running: it stops at its next heartbeat",
}


@admin.action(permissions=["run_job"], description="Cancel selected runs (queued or running)")
def cancel(modeladmin, request, queryset):
    with transaction.atomic():  # locked, so a queued run cannot start between reading and cancelling it
        live = list(queryset.filter(status__in=LIVE).select_related("job").select_for_update(of=("self",)))
        count = run_requests.request_cancel(queryset.model.objects.filter(pk__in=[run.pk for run in live]))
        audit.log_each(request, ((run, f"Cancel requested ({CANCELLED[run.status]}).") for run in live))
        audit.log_each(
            request, ((run.job, f"Cancel requested for run #{run.pk} ({CANCELLED[run.status]}).") for run in live)
        )
    if count:
        modeladmin.message_user(
            request,
            f"Cancel requested for {counted(count, 'run')}: queued ones are cancelled, "
            f"running ones stop at their next heartbeat.",
            messages.SUCCESS,
        )
    else:
        modeladmin.message_user(
            request, "No run cancelled: none of the selected runs is queued or running.", messages.WARNING
        )


@admin.action(permissions=["run_job"], description="Retry selected failed runs (as a new run)")
def retry(modeladmin, request, queryset):
    failed = list(queryset.filter(status__in=[RunStatus.FAILED, RunStatus.TIMED_OUT]).select_related("job"))
    if not failed:
        modeladmin.message_user(
            request, "No run retried: only failed or timed-out runs can be retried.", messages.WARNING
        )
        return
    retries = queue_runs(modeladmin, request, ((run.job, run.kwargs) for run in failed), Trigger.RETRY)
    pairs = [(run, new) for run, new in zip(failed, retries, strict=True) if new]
    audit.log_each(request, ((run, f"Retried as run #{new.pk}.") for run, new in pairs))
    audit.log_each(request, ((run.job, f"Retry of run #{run.pk} queued as run #{new.pk}.") for run, new in pairs))
