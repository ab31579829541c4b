"""The models: jobs — what to run, when, and on which engine — the history of their runs,
and the small rows the processes share. Import them all from here.

``job`` holds ``Job`` and its validation (``numbers``, ``problems``: why a stored job cannot
be scheduled) with its queryset (``querysets``: every bulk change bumps the marker), ``run``
``JobRun``, ``changes`` the change marker and the ``jobs_changed`` signal, ``heartbeats`` the
schedulers' heartbeats, ``api_clients`` the trigger API's clients and nonces, ``choices``
the vocabularies; ``declared`` upserts the jobs declared in settings and ``retention``
deletes old history in batches.

What it is not: the models never import an engine or the runner. A change sends
``jobs_changed``; the engines' receivers, connected at start-up, project it.
"""

from tasks_app.models.api_clients import ApiClient, ApiNonce
from tasks_app.models.changes import ChangeMarker
from tasks_app.models.choices import FINISHED, Engine, RunStatus, ScheduleType, Trigger
from tasks_app.models.heartbeats import SchedulerHeartbeat
from tasks_app.models.job import Job
from tasks_app.models.run import JobRun

__all__ = [
    "FINISHED",
    "ApiClient",
    "ApiNonce",
    "ChangeMarker",
    "Engine",
    "Job",
    "JobRun",
    "RunStatus",
    "ScheduleType",
    "SchedulerHeartbeat",
    "Trigger",
]
