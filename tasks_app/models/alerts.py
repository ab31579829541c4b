"""Alert rows: a job's open streaks (failing, overdue) and the outbox of messages about them.

An ``AlertStreak`` is open while its job is failing (``alert_after_failures`` failed runs in a
row reached) or overdue; the database allows one open streak per job and kind (a partial unique
index), so two processes that see the same thing open one streak and write one alert. Closing it
is a conditional update: only the process that closed it writes the recovery. Every overdue
enabled job has an open overdue streak — a ``silent`` one, with no message, when its overdue
alerts are off — so the dashboard and ``/metrics`` read the overdue jobs from these rows
(``overdue_looks.py``) instead of walking every job.

An ``AlertMessage`` is one message on one channel (e-mail, webhook): written ``pending`` with
the streak's opening or closing, then ``sent`` or, after its last attempt, ``failed``
(``tasks_app/alerts/`` writes and delivers them). What it is not: no sending here.
"""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from tasks_app.models.choices import in_choices

# The run an alert is about, by id: no database constraint and nothing done when the run is deleted,
# so retention keeps deleting runs with one fast ``DELETE`` per batch (a dangling id reads as no run).
RUN_REFERENCE = {
    "null": True,
    "blank": True,
    "on_delete": models.DO_NOTHING,
    "db_constraint": False,
    "related_name": "+",
}


class AlertKind(models.TextChoices):
    FAILING = "failing", "Failing"
    OVERDUE = "overdue", "Overdue"
    RECOVERED = "recovered", "Recovered"  # a message only: the end of a streak


class AlertChannel(models.TextChoices):
    EMAIL = "email", "E-mail"
    WEBHOOK = "webhook", "Webhook"


class AlertStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class StreakQuerySet(models.QuerySet):
    def open(self):
        return self.filter(closed_at__isnull=True)


class AlertStreak(models.Model):
    job = models.ForeignKey("tasks_app.Job", on_delete=models.CASCADE, related_name="alert_streaks")
    kind = models.CharField(max_length=10, choices=AlertKind.choices[:2])
    opened_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    run = models.ForeignKey("tasks_app.JobRun", help_text="What opened it.", **RUN_REFERENCE)
    slot = models.DateTimeField(null=True, blank=True, help_text="Overdue: the slot that has no run.")
    overdue_since = models.DateTimeField(
        null=True, blank=True, help_text="Overdue: when the slot's grace (and jitter) ran out."
    )
    detail = models.CharField(max_length=300, blank=True)
    silent = models.BooleanField(
        default=False,
        db_default=False,
        help_text="Opened without a message (the job's overdue alerts are off), so it closes without one too.",
    )

    objects = StreakQuerySet.as_manager()

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "kind"], condition=Q(closed_at__isnull=True), name="alertstreak_one_open_per_job_kind"
            ),
            models.CheckConstraint(condition=Q(kind__in=["failing", "overdue"]), name="alertstreak_kind_known"),
        ]


class AlertMessage(models.Model):
    """One alert or recovery notice on one channel: the outbox row the engines deliver."""

    streak = models.ForeignKey(AlertStreak, on_delete=models.CASCADE, related_name="messages")
    job = models.ForeignKey("tasks_app.Job", on_delete=models.CASCADE, related_name="alert_messages")
    run = models.ForeignKey("tasks_app.JobRun", **RUN_REFERENCE)
    kind = models.CharField(max_length=10, choices=AlertKind.choices)
    channel = models.CharField(max_length=10, choices=AlertChannel.choices)
    status = models.CharField(max_length=10, choices=AlertStatus.choices, default=AlertStatus.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(condition=in_choices("kind", AlertKind), name="alertmessage_kind_known"),
            models.CheckConstraint(condition=in_choices("channel", AlertChannel), name="alertmessage_channel_known"),
            models.CheckConstraint(condition=in_choices("status", AlertStatus), name="alertmessage_status_known"),
        ]
        indexes = [
            # The deliverers' look for due messages reads only pending rows.
            models.Index(fields=["next_attempt_at"], condition=Q(status="pending"), name="alertmessage_due"),
            models.Index(fields=["job", "-created_at"], name="alertmessage_job_recent"),
        ]
