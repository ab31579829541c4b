"""The run pages of the admin: each run's history, read-only, for both engines.

What it is not: runs are written by the runner and removed by retention; no action here
edits one (re-running a failed run is a new run: ``run_actions.retry``).
"""

from functools import partial

from django.contrib import admin
from django.urls import path
from django.utils.html import format_html

from tasks_app.admin import run_actions
from tasks_app.admin import views as admin_views
from tasks_app.admin.display import (
    EMPTY,
    attempts_table,
    duration,
    error_block,
    job_link,
    json_block,
    live_progress,
    progress_bar,
    requester,
    run_time,
    status_badge,
)
from tasks_app.models import ApiClient, JobRun, RunStatus


@admin.register(JobRun)
class JobRunAdmin(admin.ModelAdmin):
    """Run history, read-only: runs are written by the runner and removed by retention."""

    list_display = (
        "run_id",
        "job_link",
        "status_column",
        "trigger_engine",
        "scheduled",
        "started",
        "run_duration",
        "attempt_worker",
    )
    list_display_links = ("run_id",)
    empty_value_display = EMPTY
    list_filter = ("status", "engine", "trigger", ("job", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("job",)
    show_full_result_count = False  # history grows large: spare a second COUNT(*) of the whole table
    date_hierarchy = "scheduled_for"
    search_fields = ("job__name", "error")
    actions = [run_actions.cancel, run_actions.retry]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "job_link",
                    "live_status",
                    "live_progress",
                    "trigger",
                    "requester",
                    "engine",
                    "scheduled_in_zone",
                    "reason",
                ]
            },
        ),
        ("Timing", {"fields": ["created", "started_in_zone", "finished", "run_duration", "heartbeat", "next_attempt"]}),
        ("Input and outcome", {"fields": ["kwargs_json", "result_json", "error_text"]}),
        (
            "Attempts",
            {
                "fields": [
                    "attempt",
                    "worker",
                    "earlier_attempts",
                    "duplicate_claims",
                    "cancel_requested",
                    "celery_task_id",
                ]
            },
        ),
    ]
    readonly_fields = (
        "run_id",
        "job_link",
        "requester",
        "live_status",
        "live_progress",
        "run_duration",
        "kwargs_json",
        "result_json",
        "error_text",
        "earlier_attempts",
        "scheduled_in_zone",
        "created",
        "started_in_zone",
        "finished",
        "heartbeat",
        "next_attempt",
    )

    scheduled, started = run_time("scheduled_for", "Scheduled for"), run_time("started_at", "Started at")
    scheduled_in_zone = run_time("scheduled_for", "Scheduled for", with_utc=True)
    started_in_zone = run_time("started_at", "Started at", with_utc=True)
    created = run_time("created_at", "Created at", with_utc=True)
    finished = run_time("finished_at", "Finished at", with_utc=True)
    heartbeat = run_time("heartbeat_at", "Last heartbeat", with_utc=True)
    next_attempt = run_time("next_attempt_at", "Next attempt at", with_utc=True)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("job")

    def get_object(self, request, object_id, from_field=None):
        run = super().get_object(request, object_id, from_field)
        if run is not None:  # a display method gets no request: whether the API client may be linked to
            run.may_view_clients = self.admin_site.get_model_admin(ApiClient).has_view_permission(request)
        return run

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_run_job_permission(self, request):
        return request.user.has_perm(f"{self.opts.app_label}.run_job")

    def get_urls(self):
        progress = self.admin_site.admin_view(partial(admin_views.run_progress, model_admin=self))
        return [path("<path:object_id>/progress/", progress, name="tasks_app_jobrun_progress"), *super().get_urls()]

    @admin.display(description="Run", ordering="pk")
    def run_id(self, run):
        return f"#{run.pk}"

    @admin.display(description="Job", ordering="job__name")
    def job_link(self, run):
        return job_link(run.job_id, run.job.name, cut=True)

    @admin.display(description="Status", ordering="status")
    def status_column(self, run):
        # A running run's progress under its status: no column of its own, so the list fits a laptop.
        if run.status == RunStatus.RUNNING:
            return format_html("{}<br>{}", status_badge(run.status), progress_bar(run))
        return status_badge(run.status)

    # Two facts a cell where one is short, so the list fits a 1280 px screen without scrolling.
    @admin.display(description="Trigger / engine", ordering="trigger")
    def trigger_engine(self, run):
        return format_html("{}<br>{}", run.get_trigger_display(), run.get_engine_display())

    @admin.display(description="Attempt / worker", ordering="attempt")
    def attempt_worker(self, run):
        return format_html(
            '{}<br><span class="taskhub-worker" title="{}">{}</span>', run.attempt, run.worker, run.worker
        )

    @admin.display(description="Duration", ordering="duration_seconds")
    def run_duration(self, run):
        return duration(run.duration_seconds)

    @admin.display(description="Requested by")
    def requester(self, run):
        return requester(run, link=getattr(run, "may_view_clients", False))

    @admin.display(description="Status")
    def live_status(self, run):
        return format_html('<span id="run-status">{}</span>', status_badge(run.status))

    @admin.display(description="Progress")
    def live_progress(self, run):
        return live_progress(run)

    @admin.display(description="kwargs")
    def kwargs_json(self, run):
        return json_block(run.kwargs)

    @admin.display(description="Result")
    def result_json(self, run):
        return EMPTY if run.result is None else json_block(run.result)

    @admin.display(description="Error")
    def error_text(self, run):
        return error_block(run.error)

    @admin.display(description="Earlier attempts")
    def earlier_attempts(self, run):
        return attempts_table(run.attempts)
