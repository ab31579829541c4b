"""The admin: the product's main UI for jobs and their run history.

What it is: the registrations of ``Job`` and ``JobRun``, their list filters and the small
HTML helpers (status badge, progress bar, times in a job's zone) they display. The actions
live in ``actions.py``, the job form in ``forms.py``, the extra URLs in ``admin_views.py``
and the page additions in ``templates/admin/tasks_app/``.

What it is not: no validation (``Job.clean`` does it) and no bulk ``update()`` (the
``JobQuerySet`` methods do it, bumping the change marker). The job list reads each job's
last run through subqueries, so it costs the same few queries for 30 jobs or 3000.
"""

import datetime as dt
import json
import zoneinfo
from functools import partial

from django.contrib import admin
from django.db.models import Exists, OuterRef, Subquery
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from tasks_app import actions, admin_views, slots
from tasks_app.describe import describe_schedule
from tasks_app.forms import JobForm
from tasks_app.models import Job, JobRun, RunStatus, ScheduleType
from tasks_app.registry import registry

EMPTY = "—"
LIVE = (RunStatus.QUEUED, RunStatus.RUNNING)


# -- display helpers -------------------------------------------------------------------------
def status_badge(status: str):
    return format_html('<span class="taskhub-badge taskhub-{}">{}</span>', status, RunStatus(status).label)


def progress_bar(run):
    """A ``<progress>`` with the handler's message (or the percentage); indeterminate without a value."""
    if run.progress is None:
        return format_html('<progress max="1" class="taskhub-progress"></progress> <span>{}</span>',
                           run.progress_message)
    percent = f"{run.progress:.0%}"
    return format_html('<progress max="1" value="{}" class="taskhub-progress">{}</progress> <span>{}</span>',
                       run.progress, percent, run.progress_message or percent)


def local_time(moment: dt.datetime, zone_name: str, with_utc: bool = False) -> str:
    """``2027-03-28 03:00 CEST``, and with ``with_utc`` `` (01:00 UTC)`` after it."""
    try:
        zone = zoneinfo.ZoneInfo(zone_name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = dt.UTC
    local, utc = moment.astimezone(zone), moment.astimezone(dt.UTC)
    clock = "%H:%M:%S" if moment.second else "%H:%M"
    text = local.strftime(f"%Y-%m-%d {clock} %Z")
    if with_utc and local.utcoffset():
        text += utc.strftime(f" ({clock} UTC)" if utc.date() == local.date() else f" (%Y-%m-%d {clock} UTC)")
    return text


def duration(seconds: float | None) -> str:
    if seconds is None:
        return EMPTY
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def last_line(text: str) -> str:
    """The last line of an error (the exception itself, under its traceback)."""
    return (str(text or "").strip().splitlines() or [""])[-1]


def iso_time(text: str | None) -> str:
    """An ISO timestamp as stored in ``JobRun.attempts``, shown like the admin's other times (UTC)."""
    try:
        return local_time(dt.datetime.fromisoformat(text), "UTC")
    except (TypeError, ValueError):
        return text or EMPTY


def next_fire(job: Job) -> dt.datetime | None:
    """The job's next fire; None when paused or nothing is left to fire."""
    if not job.enabled or getattr(job, "once_fired", False):
        return None
    try:
        if job.schedule_type == ScheduleType.ONCE:  # `once_fired` answered the query next_fire_times makes
            times = slots.once_fire_times(job.run_at, timezone.now(), 1)
        else:
            times = job.next_fire_times(1)
    except slots.ScheduleError:
        return None
    return times[0] if times else None


def with_last_run(jobs):
    """Each job with its last run (by ``created_at``): id, status and slot, in the same query."""
    last = JobRun.objects.filter(job=OuterRef("pk")).order_by("-created_at")
    return jobs.annotate(
        last_run_id=Subquery(last.values("pk")[:1]),
        last_run_status=Subquery(last.values("status")[:1]),
        last_run_at=Subquery(last.values("scheduled_for")[:1]),
        once_fired=Exists(JobRun.objects.filter(job=OuterRef("pk"), scheduled_for=OuterRef("run_at"))),
    )


def recent_run_row(run, job) -> dict:
    """One row of the job page's table of recent runs."""
    return {"link": run_link(run.pk, f"#{run.pk}"), "status": status_badge(run.status),
            "trigger": run.get_trigger_display(), "engine": run.get_engine_display(),
            "scheduled_for": local_time(run.scheduled_for, job.timezone), "duration": duration(run.duration_seconds),
            "attempt": run.attempt, "worker": run.worker,
            "progress": progress_bar(run) if run.status == RunStatus.RUNNING else "",
            "outcome": last_line(run.error) or run.reason}


def run_link(run_id, text):
    return format_html('<a href="{}">{}</a>', reverse("admin:tasks_app_jobrun_change", args=[run_id]), text)


# -- filters ---------------------------------------------------------------------------------
class HandlerFilter(admin.SimpleListFilter):
    """The handlers registered now (not those of a migration), and jobs whose handler is gone."""

    title = "handler"
    parameter_name = "handler"
    UNREGISTERED = "~unregistered"  # no handler name starts with "~"

    def lookups(self, request, model_admin):
        return [(spec.name, spec.name) for spec in registry.specs()] + [(self.UNREGISTERED, "Not registered")]

    def queryset(self, request, queryset):
        known = {spec.name: (spec.name, *spec.aliases) for spec in registry.specs()}
        if self.value() == self.UNREGISTERED:
            return queryset.exclude(handler__in=[name for names in known.values() for name in names])
        if self.value():
            return queryset.filter(handler__in=known.get(self.value(), [self.value()]))
        return queryset


class LastStatusFilter(admin.SimpleListFilter):
    title = "last run status"
    parameter_name = "last_status"
    NEVER = "never"

    def lookups(self, request, model_admin):
        return [*RunStatus.choices, (self.NEVER, "Never run")]

    def queryset(self, request, queryset):
        if self.value() == self.NEVER:
            return queryset.filter(last_run_status__isnull=True)
        if self.value():
            return queryset.filter(last_run_status=self.value())
        return queryset


# -- jobs ------------------------------------------------------------------------------------
SAVED_ONLY = {"schedule_in_words", "next_fire_preview", "created_at", "updated_at", "declared_in_code"}


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    form = JobForm
    list_display = ("name", "handler_name", "engine", "schedule", "timezone", "next_run", "last_status",
                    "last_run_time", "enabled")
    list_filter = ("engine", "enabled", HandlerFilter, LastStatusFilter, "schedule_type")
    search_fields = ("name", "description", "handler")
    actions = [actions.enable, actions.pause, actions.run_now, actions.duplicate,
               actions.switch_to_celery, actions.switch_to_apscheduler]
    readonly_fields = sorted(SAVED_ONLY)
    fieldsets = [
        ("What", {"fields": ["name", "description", "handler", "kwargs"]}),
        ("When", {"fields": ["schedule_type", "cron_expression", "interval_seconds", "run_at", "timezone",
                             "enabled", "schedule_in_words", "next_fire_preview"]}),
        ("How", {"fields": ["engine", "queue", "priority", "timeout_seconds", "max_retries",
                            "retry_backoff_seconds", "jitter_seconds", "misfire_grace_seconds", "coalesce",
                            "max_running"]}),
        ("Record", {"fields": ["created_at", "updated_at", "declared_in_code"], "classes": ["collapse"]}),
    ]

    def get_queryset(self, request):
        return with_last_run(super().get_queryset(request))

    def get_fieldsets(self, request, obj=None):
        if obj is not None:
            return self.fieldsets
        trimmed = [(title, {**opts, "fields": [f for f in opts["fields"] if f not in SAVED_ONLY]})
                   for title, opts in self.fieldsets]
        return [(title, opts) for title, opts in trimmed if opts["fields"]]

    def has_run_job_permission(self, request):
        return request.user.has_perm(f"{self.opts.app_label}.run_job")

    def get_urls(self):
        def view(func, name):
            wrapped = self.admin_site.admin_view(partial(func, model_admin=self))
            return path(f"<path:object_id>/{name}/", wrapped, name=f"tasks_app_job_{name}")

        return [view(admin_views.run_now, "run"), view(admin_views.pause, "pause"),
                view(admin_views.resume, "resume"), *super().get_urls()]

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
            "run_url": url("run") if self.has_run_job_permission(request) else None,
            "toggle_url": url("pause" if job.enabled else "resume") if can_change else None,
            "recent_runs": [recent_run_row(run, job) for run in job.runs.order_by("-created_at")[:10]],
        }

    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        # Runs go with their job; deleting runs on their own stays a superuser's (or retention's) business.
        perms_needed.discard(JobRun._meta.verbose_name)
        return deleted, counts, perms_needed, protected

    @admin.display(description="Handler", ordering="handler")
    def handler_name(self, job):
        if job.handler in registry:
            return job.handler
        return format_html('{} <span class="taskhub-badge taskhub-failed">not registered</span>', job.handler)

    @admin.display(description="Schedule")
    def schedule(self, job):
        return describe_schedule(job)

    @admin.display(description="Next run")
    def next_run(self, job):
        moment = next_fire(job)
        return local_time(moment, job.timezone) if moment else EMPTY

    @admin.display(description="Last run", ordering="last_run_status")
    def last_status(self, job):
        return run_link(job.last_run_id, status_badge(job.last_run_status)) if job.last_run_status else EMPTY

    @admin.display(description="Last run at", ordering="last_run_at")
    def last_run_time(self, job):
        return local_time(job.last_run_at, job.timezone) if job.last_run_at else EMPTY

    @admin.display(description="Schedule in words")
    def schedule_in_words(self, job):
        return describe_schedule(job) or EMPTY

    @admin.display(description="Next 5 fire times")
    def next_fire_preview(self, job):
        try:
            times = job.next_fire_times(5)
        except slots.ScheduleError as exc:
            return str(exc)
        if not times:
            return "None: this one-off job has run." if job.schedule_type == ScheduleType.ONCE else "None."
        items = format_html_join("", "<li>{}</li>", ((local_time(t, job.timezone, with_utc=True),) for t in times))
        paused = "" if job.enabled else format_html("<p>{}</p>", "Paused: none of these fire until it is resumed.")
        return format_html('<ol class="taskhub-fires">{}</ol>{}', items, paused)


# -- runs ------------------------------------------------------------------------------------
def run_time(field: str, description: str, with_utc: bool = False):
    """A display method showing a run's ``field`` in its job's zone (the zone its schedule is read in)."""
    @admin.display(description=description, ordering=field)
    def show(model_admin, run):
        moment = getattr(run, field)
        return local_time(moment, run.job.timezone, with_utc) if moment else EMPTY

    return show


@admin.register(JobRun)
class JobRunAdmin(admin.ModelAdmin):
    """Run history, read-only: runs are written by the runner and removed by retention."""

    list_display = ("run_id", "job_link", "status_column", "trigger", "engine", "scheduled", "started",
                    "run_duration", "attempt", "worker", "running_progress")
    list_display_links = ("run_id",)
    list_filter = ("status", "engine", "trigger", ("job", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("job",)
    show_full_result_count = False  # history grows large: spare a second COUNT(*) of the whole table
    date_hierarchy = "scheduled_for"
    search_fields = ("job__name", "error")
    actions = [actions.cancel, actions.retry]
    fieldsets = [
        (None, {"fields": ["job_link", "live_status", "live_progress", "trigger", "engine", "scheduled_in_zone",
                           "reason"]}),
        ("Timing", {"fields": ["created", "started_in_zone", "finished", "run_duration", "heartbeat",
                               "next_attempt"]}),
        ("Input and outcome", {"fields": ["kwargs_json", "result_json", "error_text"]}),
        ("Attempts", {"fields": ["attempt", "worker", "earlier_attempts", "duplicate_claims", "cancel_requested",
                                 "celery_task_id"]}),
    ]
    readonly_fields = ("run_id", "job_link", "live_status", "live_progress", "run_duration", "kwargs_json",
                       "result_json", "error_text", "earlier_attempts", "scheduled_in_zone", "created",
                       "started_in_zone", "finished", "heartbeat", "next_attempt")

    scheduled, started = run_time("scheduled_for", "Scheduled for"), run_time("started_at", "Started at")
    scheduled_in_zone = run_time("scheduled_for", "Scheduled for", with_utc=True)
    started_in_zone = run_time("started_at", "Started at", with_utc=True)
    created = run_time("created_at", "Created at", with_utc=True)
    finished = run_time("finished_at", "Finished at", with_utc=True)
    heartbeat = run_time("heartbeat_at", "Last heartbeat", with_utc=True)
    next_attempt = run_time("next_attempt_at", "Next attempt at", with_utc=True)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("job")

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
        return format_html('<a href="{}">{}</a>', reverse("admin:tasks_app_job_change", args=[run.job_id]),
                           run.job.name)

    @admin.display(description="Status", ordering="status")
    def status_column(self, run):
        return status_badge(run.status)

    @admin.display(description="Duration", ordering="duration_seconds")
    def run_duration(self, run):
        return duration(run.duration_seconds)

    @admin.display(description="Progress")
    def running_progress(self, run):
        return progress_bar(run) if run.status == RunStatus.RUNNING else ""

    @admin.display(description="Status")
    def live_status(self, run):
        return format_html('<span id="run-status">{}</span>', status_badge(run.status))

    @admin.display(description="Progress")
    def live_progress(self, run):
        if run.status not in LIVE:
            return progress_bar(run) if run.progress is not None else EMPTY
        url = reverse("admin:tasks_app_jobrun_progress", args=[run.pk])
        return format_html('<div id="run-progress" data-url="{}">{}</div>', url, progress_bar(run))

    @admin.display(description="kwargs")
    def kwargs_json(self, run):
        return format_html('<pre class="taskhub-pre">{}</pre>', json.dumps(run.kwargs, indent=2, ensure_ascii=False))

    @admin.display(description="Result")
    def result_json(self, run):
        if run.result is None:
            return EMPTY
        return format_html('<pre class="taskhub-pre">{}</pre>', json.dumps(run.result, indent=2, ensure_ascii=False))

    @admin.display(description="Error")
    def error_text(self, run):
        return format_html('<pre class="taskhub-pre taskhub-error">{}</pre>', run.error) if run.error else EMPTY

    @admin.display(description="Earlier attempts")
    def earlier_attempts(self, run):
        if not run.attempts:
            return EMPTY
        rows = [{**attempt, "duration": duration(attempt.get("duration_seconds")),
                 "started": iso_time(attempt.get("started_at")), "finished": iso_time(attempt.get("finished_at")),
                 "summary": last_line(attempt.get("error"))} for attempt in run.attempts]
        return render_to_string("admin/tasks_app/jobrun/attempts.html", {"attempts": rows})
