"""A run: one slot of one job, with its status, attempts, outcome and progress."""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from tasks_app.models.choices import FINISHED, Engine, RunStatus, Trigger, in_choices
from tasks_app.models.job import Job
from tasks_app.models.run_counts import JobRunQuerySet


class JobRun(models.Model):
    """One slot of one job: ``(job, scheduled_for)`` is unique, so a slot runs at most once."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="runs")
    engine = models.CharField(max_length=20, choices=Engine.choices)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.SCHEDULE)
    scheduled_for = models.DateTimeField()
    kwargs = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    attempt = models.PositiveSmallIntegerField(default=1)
    attempts = models.JSONField(default=list, blank=True, help_text="Earlier attempts of this slot.")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    reason = models.CharField(max_length=300, blank=True, help_text="Why it was skipped or cancelled.")
    worker = models.CharField(max_length=200, blank=True, help_text="host:pid that ran the current attempt.")
    celery_task_id = models.CharField(max_length=255, blank=True)
    progress = models.FloatField(null=True, blank=True)
    progress_message = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    duplicate_claims = models.PositiveIntegerField(default=0, help_text="Later claims of this slot that did not run.")
    lane = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        editable=False,
        help_text="Which of the job's max_running places a running run holds; empty once it ends.",
    )
    # Who asked for a run that no schedule made: the text stays when the API client or user is deleted,
    # the link to the client goes (SET_NULL), so a deleted client's runs keep their history and grant nothing.
    requested_by = models.CharField(
        max_length=200,
        blank=True,
        default="",
        db_default="",
        editable=False,
        help_text="Who asked for this run (a person or an API client); empty for a scheduled run.",
    )
    api_client = models.ForeignKey(
        "tasks_app.ApiClient",
        null=True,
        blank=True,
        editable=False,
        on_delete=models.SET_NULL,
        related_name="runs",
        db_index=False,  # the partial index below: most runs have no client
    )

    objects = JobRunQuerySet.as_manager()

    class Meta:
        verbose_name = "run"
        ordering = ["-scheduled_for"]
        get_latest_by = "scheduled_for"
        constraints = [
            models.UniqueConstraint(fields=["job", "scheduled_for"], name="jobrun_one_per_slot"),
            models.UniqueConstraint(
                fields=["job"],
                condition=Q(status=RunStatus.QUEUED, trigger=Trigger.RUN_NOW),
                name="jobrun_one_queued_run_now",
            ),
            # A run holds one of its job's ``max_running`` lanes while it runs: the database refuses a
            # second holder, so the one-statement claim needs no lock to keep the limit.
            models.UniqueConstraint(
                fields=["job", "lane"], condition=Q(lane__isnull=False), name="jobrun_one_run_per_lane"
            ),
            models.CheckConstraint(condition=in_choices("status", RunStatus), name="jobrun_status_known"),
            models.CheckConstraint(condition=in_choices("trigger", Trigger), name="jobrun_trigger_known"),
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="jobrun_status_created"),
            models.Index(fields=["created_at"], name="jobrun_created"),
            models.Index(fields=["job", "-created_at"], name="jobrun_job_recent"),
            models.Index(fields=["job"], condition=Q(status=RunStatus.RUNNING), name="jobrun_running"),
            models.Index(fields=["api_client"], condition=Q(api_client__isnull=False), name="jobrun_api_client"),
            # /metrics: the last hour's durations and lateness, and the few runs claimed twice.
            models.Index(fields=["finished_at"], condition=Q(finished_at__isnull=False), name="jobrun_finished"),
            models.Index(
                fields=["job", "engine"],
                include=["duplicate_claims"],
                condition=Q(duplicate_claims__gt=0),
                name="jobrun_duplicate_claims",
            ),
        ]

    def __str__(self):
        return f"{self.job.name} @ {self.scheduled_for:%Y-%m-%d %H:%M:%S}"

    def delete(self, using=None, keep_parents=False):
        return type(self).objects.using(using or self._state.db).filter(pk=self.pk).delete()

    @property
    def finished(self) -> bool:
        return self.status in FINISHED
