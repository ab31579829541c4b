"""The dashboard's place in the admin: the index page's context and the job page's history chart.

``install(admin.site)`` (called from ``admin.py``) wraps the site's index view so that a staff
user with ``tasks_app.view_jobrun`` gets ``taskhub_dashboard`` in its context, which
``templates/admin/index.html`` shows above the app list; everyone else gets the stock index
and no dashboard query runs. Links appear only for the pages the user may open.
"""

from functools import wraps

from tasks_app.admin.display import duration, job_link, last_line, local_time, run_link, status_badge
from tasks_app.monitoring import charts, dashboard

PERMISSION = "tasks_app.view_jobrun"
ENGINE_LABELS = {
    "beat": "Celery beat",
    "apscheduler": "APScheduler",
    "workers": "Celery workers",
    "broker": "Broker",
    "database": "Database",
}


def install(site) -> None:
    """Add the dashboard to ``site``'s index (before its URLs are built)."""
    stock_index = site.index

    @wraps(stock_index)
    def index(request, extra_context=None):
        extra = dict(extra_context or {})
        if request.user.has_perm(PERMISSION):
            extra["taskhub_dashboard"] = context(request)
        return stock_index(request, extra_context=extra)

    site.index = index


def context(request) -> dict:
    data = dashboard.overview()
    may_view_jobs = request.user.has_perm("tasks_app.view_job")
    return {
        "engines": [_engine(name, check) for name, check in data["engines"].items()],
        "counts": [(status_badge(status), count, status) for status, count in data["counts"].items()],
        "total": sum(data["counts"].values()),
        "timeline": charts.timeline(data["timeline"], data["since"], data["now"]),
        "failing": [_failing(job, may_view_jobs) for job in data["failing"]],
        "overdue": [_overdue(streak, data["now"], may_view_jobs) for streak in data["overdue"]],
        "overdue_count": data["overdue_count"],
        "overdue_look": _overdue_look(data["overdue_look"]),
        "slowest": [
            {**row, "p95_text": duration(row["p95"]), "job": _job(row["job_id"], row["job__name"], may_view_jobs)}
            for row in data["slowest"]
        ],
        "oldest_queued": _queued(data["oldest_queued"], data["now"], may_view_jobs),
        "broken": [
            {"job": _job(job.pk, job.name, may_view_jobs), "engine": job.engine, "reason": reason}
            for job, reason in data["broken"]
        ],
        "broken_count": data["broken_count"],
    }


def _engine(name: str, check: dict) -> dict:
    detail = ", ".join(
        filter(
            None,
            [
                check.get("error"),
                check.get("leader") and f"leader {check['leader']}",
                "seconds_since_beat" in check and f"last beat {check['seconds_since_beat']:g} s ago",
                check.get("workers") and f"{len(check['workers'])} up: {', '.join(check['workers'])}",
                check.get("url"),
                check.get("vendor"),
            ],
        )
    )
    return {"name": ENGINE_LABELS.get(name, name), "key": name, "ok": check.get("ok", False), "detail": detail}


def _job(job_id, name, may_view: bool):
    return job_link(job_id, name) if may_view else name


def _failing(job, may_view_jobs: bool) -> dict:
    return {
        "job": _job(job.pk, job.name, may_view_jobs),
        "status": status_badge(job.last_outcome),
        "error": last_line(job.last_error),
        "run": run_link(job.last_run_id, f"#{job.last_run_id}"),
        "since": local_time(job.failing_since, "UTC") if job.failing_since else "—",
    }


def _overdue(streak, now, may_view_jobs: bool) -> dict:
    since = streak.overdue_since or streak.opened_at
    return {
        "job": _job(streak.job.pk, streak.job.name, may_view_jobs),
        "engine": streak.job.engine,
        "slot": local_time(streak.slot, "UTC") if streak.slot else "—",
        "since": local_time(since, "UTC"),
        "for": duration(max((now - since).total_seconds(), 0)),
    }


def _overdue_look(look) -> dict:
    """How fresh the overdue list is: the engines' last look, or plainly that none is looking."""
    if look is None:
        return {"recent": False, "none": "Unknown.", "text": NEVER_LOOKED}
    ago = f"{duration(look.age)} ago ({look.by})"
    if look.recent:
        return {"recent": True, "none": "None: every enabled job's slots have runs.", "text": f"As of the look {ago}."}
    return {"recent": False, "none": "None at the last look.", "text": STALE_LOOK.format(ago=ago)}


NEVER_LOOKED = (
    "No engine process has looked for overdue jobs yet: beat and runapscheduler each look while they run "
    "(every TASKHUB_ALERT_OVERDUE_EVERY_SECONDS, unless TASKHUB_ALERT_POLL_SECONDS is 0). With neither running, "
    "no scheduled job runs."
)
STALE_LOOK = (
    "Out of date: the last look for overdue jobs was {ago}, and no engine process is looking now (beat and "
    "runapscheduler each look while they run, unless TASKHUB_ALERT_POLL_SECONDS is 0). This is what it found then."
)


def _queued(run, now, may_view_jobs: bool) -> dict | None:
    if run is None:
        return None
    return {
        "run": run_link(run.pk, f"#{run.pk}"),
        "job": _job(run.job_id, run.job.name, may_view_jobs),
        "created": local_time(run.created_at, "UTC"),
        "waiting": duration(max((now - run.created_at).total_seconds(), 0)),
    }


def job_history_chart(job):
    """The job page's chart of its last 50 runs (the caller checks that the user may see runs)."""
    return charts.run_history(dashboard.job_history(job), job.name)
