"""What the admin shows: list filters and the small HTML helpers of the job and run pages.

What it is: the status badge, the progress bar, times in a job's zone, durations, a job's
next run and the list filters by handler and by last run status. ``admin.py`` registers the
models and uses these; the templates are in ``templates/admin/tasks_app/``.

What it is not: no queries of its own. The job list's last run and ``once_fired`` come from
``JobQuerySet.with_last_run()``, so ``next_fire`` costs no query per job.
"""

import datetime as dt
import json
import zoneinfo

from django.contrib import admin
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from tasks_app.admin.text import short_result
from tasks_app.handlers.registry import registry
from tasks_app.models import Job, RunStatus, ScheduleType, Trigger
from tasks_app.monitoring.charts import duration

EMPTY = "—"
LIVE = (RunStatus.QUEUED, RunStatus.RUNNING)


# -- display helpers -------------------------------------------------------------------------
def status_badge(status: str):
    return format_html('<span class="taskhub-badge taskhub-{}">{}</span>', status, RunStatus(status).label)


def progress_bar(run):
    """A ``<progress>`` with the handler's message (or the percentage); indeterminate without a value."""
    if run.progress is None:
        return format_html(
            '<progress max="1" class="taskhub-progress"></progress> <span>{}</span>', run.progress_message
        )
    percent = f"{run.progress:.0%}"
    return format_html(
        '<progress max="1" value="{}" class="taskhub-progress">{}</progress> <span>{}</span>',
        run.progress,
        percent,
        run.progress_message or percent,
    )


def local_time(moment: dt.datetime, zone_name: str, with_utc: bool = False) -> str:
    """``2027-03-28 03:00:00 CEST``, and with ``with_utc`` `` (01:00:00 UTC)`` after it: always to the second."""
    try:
        zone = zoneinfo.ZoneInfo(zone_name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError, TypeError):  # a zone gone from tzdata: UTC
        zone = dt.UTC
    local, utc = moment.astimezone(zone), moment.astimezone(dt.UTC)
    clock = "%H:%M:%S"
    text = local.strftime(f"%Y-%m-%d {clock} %Z")
    if with_utc and local.utcoffset():
        text += utc.strftime(f" ({clock} UTC)" if utc.date() == local.date() else f" (%Y-%m-%d {clock} UTC)")
    return text


def list_time(moment: dt.datetime, zone_name: str):
    """``local_time`` for a list column: it may wrap between the date and the time, nowhere else."""
    date, _, clock = local_time(moment, zone_name).partition(" ")
    return format_html('<span class="taskhub-nowrap">{}</span> <span class="taskhub-nowrap">{}</span>', date, clock)


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
    """The job's next fire; None when paused, broken, or nothing is left to fire."""
    if not job.enabled or job.schedule_problem():
        return None
    times = job.next_fire_times(1)  # no query on a list row: it reads the `once_fired` annotation
    return times[0] if times else None


def broken_badge(reason: str):
    """A job the engines skip, with the reason on hover and in words."""
    return format_html(
        '<span class="taskhub-badge taskhub-failed" title="{}">broken</span> '
        '<span class="taskhub-broken-reason">{}</span>',
        reason,
        reason,
    )


def fire_preview(job: Job, count: int = 5):
    """The job's next ``count`` fires in its zone (and UTC), or why there are none."""
    problem = job.schedule_problem()
    if problem:
        return format_html("<p>{}</p>", f"None: the engines cannot schedule this job ({problem}).")
    times = job.next_fire_times(count)
    if not times:
        return "None: this one-off job has run." if job.schedule_type == ScheduleType.ONCE else "None."
    items = format_html_join("", "<li>{}</li>", ((local_time(t, job.timezone, with_utc=True),) for t in times))
    paused = "" if job.enabled else format_html("<p>{}</p>", "Paused: none of these fire until it is resumed.")
    return format_html('<ol class="taskhub-fires">{}</ol>{}', items, paused)


def handler_label(job: Job):
    """The job's handler, flagged when no handler of that name is registered now."""
    if job.handler in registry:
        return job.handler
    return format_html('{} <span class="taskhub-badge taskhub-failed">not registered</span>', job.handler)


def job_link(job_id, text, cut: bool = False):
    """A link to the job's page; ``cut``: a long name ends in an ellipsis and shows whole on hover."""
    url = reverse("admin:tasks_app_job_change", args=[job_id])
    if cut:
        return format_html('<a class="taskhub-job-name" href="{}" title="{}">{}</a>', url, text, text)
    return format_html('<a href="{}">{}</a>', url, text)


def run_link(run_id, text):
    return format_html('<a href="{}">{}</a>', reverse("admin:tasks_app_jobrun_change", args=[run_id]), text)


def requester(run, link: bool):
    """Who asked for a run: a person or an API client, linked to the client while it exists (and ``link``)."""
    if not run.requested_by:
        return EMPTY
    if run.api_client_id is not None and link:
        url = reverse("admin:tasks_app_apiclient_change", args=[run.api_client_id])
        return format_html('<a href="{}">{}</a>', url, run.requested_by)
    if run.api_client_id is None and run.trigger == Trigger.API:
        return f"{run.requested_by} (deleted since)"
    return run.requested_by


def recent_run_row(run, job) -> dict:
    """One row of the job page's table of recent runs."""
    return {
        "link": run_link(run.pk, f"#{run.pk}"),
        "status": status_badge(run.status),
        "trigger": run.get_trigger_display(),
        "engine": run.get_engine_display(),
        "scheduled_for": local_time(run.scheduled_for, job.timezone),
        "duration": duration(run.duration_seconds),
        "attempt": run.attempt,
        "worker": run.worker,
        "progress": progress_bar(run) if run.status == RunStatus.RUNNING else "",
        "outcome": last_line(run.error) or run.reason or short_result(run),
    }


def live_progress(run):
    """A run's progress; while it is queued or running, the run page polls ``admin_views.run_progress``."""
    if run.status not in LIVE:
        return progress_bar(run) if run.progress is not None else EMPTY
    url = reverse("admin:tasks_app_jobrun_progress", args=[run.pk])
    return format_html('<div id="run-progress" data-url="{}">{}</div>', url, progress_bar(run))


def json_block(value):
    return format_html('<pre class="taskhub-pre">{}</pre>', json.dumps(value, indent=2, ensure_ascii=False))


def error_block(error: str):
    return format_html('<pre class="taskhub-pre taskhub-error">{}</pre>', error) if error else EMPTY


def attempts_table(attempts: list[dict]):
    """The earlier attempts of a run's slot, as stored in ``JobRun.attempts``."""
    if not attempts:
        return EMPTY
    rows = [
        {
            **attempt,
            "duration": duration(attempt.get("duration_seconds")),
            "started": iso_time(attempt.get("started_at")),
            "finished": iso_time(attempt.get("finished_at")),
            "summary": last_line(attempt.get("error")),
        }
        for attempt in attempts
    ]
    return render_to_string("admin/tasks_app/jobrun/attempts.html", {"attempts": rows})


def run_time(field: str, description: str, with_utc: bool = False):
    """A display method showing a run's ``field`` in its job's zone (the zone its schedule is read in).

    With ``with_utc`` (the run page) the UTC time follows; without it (the run list) it is a ``list_time``.
    """

    @admin.display(description=description, ordering=field)
    def show(model_admin, run):
        moment = getattr(run, field)
        if not moment:
            return EMPTY
        return local_time(moment, run.job.timezone, with_utc) if with_utc else list_time(moment, run.job.timezone)

    return show


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
    """By the last run's status (``with_last_run()`` annotates it), or jobs never run."""

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
