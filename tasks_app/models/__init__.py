"""Jobs — what to run, when, and on which engine — and the history of their runs.

``job.py`` holds ``Job`` and its validation, ``run.py`` ``JobRun``, ``markers.py`` the change
marker and scheduler heartbeats, ``choices.py`` their vocabularies; the trigger API's models
live in ``tasks_app/api/models.py``. Import them all from here.
"""

from tasks_app.models.choices import FINISHED, Engine, RunStatus, ScheduleType, Trigger
from tasks_app.models.job import Job
from tasks_app.models.markers import ChangeMarker, SchedulerHeartbeat
from tasks_app.models.run import JobRun
from tasks_app.api.models import ApiClient, ApiNonce

__all__ = ["FINISHED", "ApiClient", "ApiNonce", "ChangeMarker", "Engine", "Job", "JobRun", "RunStatus",
           "ScheduleType", "SchedulerHeartbeat", "Trigger"]
