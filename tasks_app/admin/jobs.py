"""The job pages of the admin: the product's main UI for jobs.

What it is: the registration of ``Job`` and its ``ModelAdmin`` (runs: ``runs.py``). The filters
and HTML helpers (badges, progress bars, times in a job's zone) live in ``display.py``, the
actions in ``actions.py`` (export and import: ``job_files.py``), the job form in ``forms.py``,
the extra URLs in ``views.py`` and the page additions in ``templates/admin/tasks_app/``.

What it is not: no validation (``Job.clean`` does it) and no bulk ``update()`` (the
``JobQuerySet`` methods do it, bumping the change marker). The job list reads each job's
last run through ``JobQuerySet.with_last_run()``, so it costs the same few queries for 30 jobs or 3000.
"""

from functools import partial

from django.contrib import admin
from django.urls import path, reverse
from django.utils.html import format_html

from tasks_app.admin import actions
from tasks_app.admin import dashboard as admin_dashboard
from tasks_app.admin import views as admin_views
from tasks_app.admin.alerts import alerts_panel
from tasks_app.admin.display import (
    EMPTY,
    LIVE,
    HandlerFilter,
    LastStatusFilter,
    broken_badge,
    fire_preview,
    handler_label,
    list_time,
    next_fire,
    recent_run_row,
    run_link,
    status_badge,
)
from tasks_app.admin.forms import JobForm
from tasks_app.admin.job_files import JobFilesAdmin
from tasks_app.models import Job, JobRun
from tasks_app.scheduling.describe import describe_schedule

SAVED_ONLY = {
    "schedule_in_words",
    "next_fire_preview",
    "created_at",
    "updated_at",
    "declared_in_code",
    "recent_alerts",
}


@admin.register(Job)
class JobAdmin(JobFilesAdmin, admin.ModelAdmin):
    form = JobForm
    change_list_template = "admin/tasks_app/job/change_list.html"  # under the import button's template
    empty_value_display = EMPTY
    # The zone is in the schedule's words and on every time: no column of its own, so the list fits a laptop.
    list_display = ("name", "handler_name", "engine", "schedule", "next_run", "last_status", "enabled")
    list_filter = ("engine", "enabled", HandlerFilter, LastStatusFilter, "schedule_type")
    search_fields = ("name", "description", "handler")
    actions = [
        actions.enable,
        actions.pause,
        actions.run_now,
        actions.duplicate,
        actions.switch_to_celery,
        actions.switch_to_apscheduler,
    ]
    readonly_fields = sorted(SAVED_ONLY)
    fieldsets = [
        ("What", {"fields": ["name", "description", "handler", "kwargs"]}),
        (
            "When",
            {
                "fields": [
                    "schedule_type",
                    "cron_expression",
                    "interval_seconds",
                    "run_at",
                    "timezone",
                    "enabled",
                    "schedule_in_words",
                    "next_fire_preview",
                ]
            },
        ),
        (
            "How",
            {
                "fields": [
                    "engine",
                    "queue",
                    "priority",
                    "timeout_seconds",
                    "max_retries",
                    "retry_backoff_seconds",
                    "jitter_seconds",
                    "misfire_grace_seconds",
                    "coalesce",
                    "max_running",
                ]
            },
        ),
        ("Alerts", {"fields": ["alert_after_failures", "alert_when_overdue", "alert_emails", "recent_alerts"]}),
        ("Record", {"fields": ["created_at", "updated_at", "declared_in_code"], "classes": ["collapse"]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).with_last_run()

    def get_fieldsets(self, request, obj=None):
        if obj is not None:
            return self.fieldsets
        trimmed = [
            (title, {**opts, "fields": [f for f in opts["fields"] if f not in SAVED_ONLY]})
            for title, opts in self.fieldsets
        ]
        return [(title, opts) for title, opts in trimmed if opts["fields"]]

    def has_run_job_permission(self, request):
        return request.user.has_perm(f"{self.opts.app_label}.run_job")

    def has_view_runs_permission(self, request):
        return request.user.has_perm(f"{self.opts.app_label}.view_jobrun")

    def get_urls(self):
        def view(func, name):
            wrapped = self.admin_site.admin_view(partial(func, model_admin=self))
            return path(f"<path:object_id>/{name}/", wrapped, name=f"tasks_app_job_{name}")

        return [
            view(admin_views.run_now, "run"),
            view(admin_views.pause, "pause"),
            view(admin_views.resume, "resume"),
            view(admin_views.recent_runs, "runs"),
            *super().get_urls(),
        ]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context.update(self._page_extras(request, obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _page_extras(self, request, job) -> dict:
        """The buttons this user may press, and the job's last 10 runs."""

        def url(view):
            return reverse(f"admin:tasks_app_job_{view}", args=[job.pk])

        can_change = self.has_change_permission(request, job)
        return {
            "schedule_problem": job.schedule_problem(),
            "run_url": url("run") if self.has_run_job_permission(request) else None,
            "toggle_url": url("pause" if job.enabled else "resume") if can_change else None,
            **self.runs_context(request, job),
        }

    def runs_context(self, request, job) -> dict:
        """The job page's run history chart and table of its last 10 runs, for users who may see runs."""
        if not self.has_view_runs_permission(request):
            return {}
        runs = list(job.runs.order_by("-created_at")[:10])
        return {
            "recent_runs": [recent_run_row(run, job) for run in runs],
            "history_chart": admin_dashboard.job_history_chart(job),
            "runs_url": reverse("admin:tasks_app_job_runs", args=[job.pk]),
            "runs_live": any(run.status in LIVE for run in runs),
        }

    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        # Runs go with their job; deleting runs on their own stays a superuser's (or retention's) business.
        perms_needed.discard(JobRun._meta.verbose_name)
        return deleted, counts, perms_needed, protected

    @admin.display(description="Handler", ordering="handler")
    def handler_name(self, job):
        return handler_label(job)

    @admin.display(description="Schedule")
    def schedule(self, job):
        return describe_schedule(job)

    @admin.display(description="Next run")
    def next_run(self, job):
        problem = job.enabled and job.schedule_problem()
        if problem:
            return broken_badge(problem)
        moment = next_fire(job)
        return list_time(moment, job.timezone) if moment else EMPTY

    @admin.display(description="Last run", ordering="last_run_at")
    def last_status(self, job):
        if not job.last_run_status:
            return EMPTY
        return format_html(
            "{}<br>{}",
            run_link(job.last_run_id, status_badge(job.last_run_status)),
            list_time(job.last_run_at, job.timezone),
        )

    @admin.display(description="Schedule in words")
    def schedule_in_words(self, job):
        return describe_schedule(job) or EMPTY

    @admin.display(description="Last alerts")
    def recent_alerts(self, job):
        return alerts_panel(job)

    @admin.display(description="Next 5 fire times")
    def next_fire_preview(self, job):
        return fire_preview(job, 5)
