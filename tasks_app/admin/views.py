"""The admin's own URLs: a job's "Run now", "Pause" and "Resume" buttons, and what its pages poll.

The polled views are a run's progress as JSON and a job's table of recent runs as HTML.

Each view is wired in ``ModelAdmin.get_urls`` through ``admin_site.admin_view`` (staff login,
CSRF, no caching) with its ``model_admin`` bound, and checks that admin's permissions itself.
"""

from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from tasks_app.admin import actions


def _object(model_admin, request, object_id):
    obj = model_admin.get_object(request, unquote(object_id))
    if obj is None:
        raise Http404(f"No {model_admin.opts.verbose_name} with id {object_id!r}.")
    return obj


def _back(model_admin, obj):
    opts = model_admin.opts
    return redirect(f"admin:{opts.app_label}_{opts.model_name}_change", obj.pk)


@require_POST
def run_now(request, object_id, model_admin):
    if not model_admin.has_run_job_permission(request):
        raise PermissionDenied
    job = _object(model_admin, request, object_id)
    actions.queue_runs(model_admin, request, [(job, None)])
    return _back(model_admin, job)


def _set_enabled(request, object_id, model_admin, enabled: bool):
    if not model_admin.has_change_permission(request):
        raise PermissionDenied
    job = _object(model_admin, request, object_id)
    if not model_admin.has_change_permission(request, job):
        raise PermissionDenied
    word = "resumed" if enabled else "paused"
    changed = actions.set_enabled(request, type(job).objects.filter(pk=job.pk), enabled, f"{word.capitalize()}.")
    if changed:
        model_admin.message_user(request, f"“{job.name}” {word}.", messages.SUCCESS)
    else:
        model_admin.message_user(request, f"“{job.name}” was already {word}.", messages.INFO)
    return _back(model_admin, job)


@require_POST
def pause(request, object_id, model_admin):
    return _set_enabled(request, object_id, model_admin, enabled=False)


@require_POST
def resume(request, object_id, model_admin):
    return _set_enabled(request, object_id, model_admin, enabled=True)


@require_GET
def run_progress(request, object_id, model_admin):
    """What the run page polls while a run is queued or running."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    run = _object(model_admin, request, object_id)
    if not model_admin.has_view_permission(request, run):
        raise PermissionDenied
    return JsonResponse(
        {
            "status": run.status,
            "status_label": run.get_status_display(),
            "progress": run.progress,
            "progress_message": run.progress_message,
        }
    )


@require_GET
def recent_runs(request, object_id, model_admin):
    """The job page's run history chart and recent runs, which the page polls to show new runs and progress."""
    if not (model_admin.has_view_permission(request) and model_admin.has_view_runs_permission(request)):
        raise PermissionDenied
    job = _object(model_admin, request, object_id)
    if not model_admin.has_view_permission(request, job):
        raise PermissionDenied
    context = {"original": job, **model_admin.runs_context(request, job)}
    return render(request, "admin/tasks_app/job/runs.html", context)
