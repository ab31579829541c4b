"""The models: jobs — what to run, when, and on which engine — the history of their runs,
and the small rows the processes share. Import them all from here.

``job`` holds ``Job`` and its validation (``numbers``, ``problems``: why a stored job cannot be
scheduled) with its queryset (``querysets``: every bulk change bumps the marker), ``run``
``JobRun``, ``changes`` the change marker and the ``jobs_changed`` signal, ``heartbeats`` the
schedulers' heartbeats, ``api_clients`` the trigger API's clients and nonces, ``choices`` the
vocabularies, ``overdue`` the jobs whose slot passed with no run (``overdue_looks``: what the
engines' last look found, which the dashboard and ``/metrics`` read), ``alerts`` the alert streaks
and their outbox (``recipients``: a job's own alert addresses), ``run_counts`` the counts of
finished runs that outlive their rows and ``run_totals`` what ``/metrics`` reads of them;
``declared`` upserts the jobs declared in settings (its ``upsert`` serves the job files too),
``job_files`` reads and writes jobs as JSON or YAML files, and ``retention`` deletes old
history in batches.

What it is not: the models never import an engine or the runner. A change sends
``jobs_changed``; the engines' receivers, connected at start-up, project it.
"""

from tasks_app.models.alerts import AlertChannel, AlertKind, AlertMessage, AlertStatus, AlertStreak
from tasks_app.models.api_clients import ApiClient, ApiNonce
from tasks_app.models.changes import ChangeMarker
from tasks_app.models.choices import FINISHED, Engine, RunStatus, ScheduleType, Trigger
from tasks_app.models.heartbeats import SchedulerHeartbeat
from tasks_app.models.job import Job
from tasks_app.models.overdue_looks import OverdueLook
from tasks_app.models.run import JobRun
from tasks_app.models.run_counts import RunCountMark, RunTally

__all__ = [
    "FINISHED",
    "AlertChannel",
    "AlertKind",
    "AlertMessage",
    "AlertStatus",
    "AlertStreak",
    "ApiClient",
    "ApiNonce",
    "ChangeMarker",
    "Engine",
    "Job",
    "JobRun",
    "OverdueLook",
    "RunCountMark",
    "RunStatus",
    "RunTally",
    "ScheduleType",
    "SchedulerHeartbeat",
    "Trigger",
]
