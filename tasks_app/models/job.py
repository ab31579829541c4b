"""A job — what to run, when, and on which engine — with its validation.

Validation lives here (``Job.clean``, the field validators and database constraints) so the
admin, the ORM's ``full_clean()`` and the commands reject the same input with the same messages.
"""

import datetime as dt
import sys

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from tasks_app import conf
from tasks_app.handlers import json_limits, kwargs_schema, registry
from tasks_app.models import problems, recipients
from tasks_app.models.choices import Engine, ScheduleType, in_choices
from tasks_app.models.numbers import number_errors
from tasks_app.models.querysets import JobQuerySet
from tasks_app.scheduling import slots
from tasks_app.scheduling.describe import describe_schedule

ONE_YEAR = 365 * 24 * 3600

name_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9._-]*\Z",
    "Use lowercase letters, digits, '.', '-' and '_', starting with a letter or digit.",
)


def _unstorable(kwargs: dict) -> bool:
    try:
        kwargs_schema.json_text(kwargs)
    except kwargs_schema.KwargsError:
        return True
    return False


# Text that many jobs have alike: a scheduler holding 100,000 jobs keeps each value once (``Job.from_db``),
# about 35 MB less than a copy per row. Names, unique per job, are not among them.
SHARED_TEXT = frozenset({"handler", "engine", "schedule_type", "cron_expression", "timezone", "queue"})


def default_misfire_grace() -> int:
    """A new job's misfire grace: ``TASKHUB["DEFAULT_MISFIRE_GRACE_SECONDS"]`` (300 unless set)."""
    return conf.get("DEFAULT_MISFIRE_GRACE_SECONDS")


class Job(models.Model):
    # what
    name = models.CharField(max_length=100, unique=True, validators=[name_validator])
    description = models.TextField(blank=True)
    handler = models.CharField(max_length=100, help_text="A registered handler (see manage.py list_handlers).")
    kwargs = models.JSONField(default=dict, blank=True, help_text="A JSON object of the handler's parameters.")
    # when
    schedule_type = models.CharField(max_length=10, choices=ScheduleType.choices, default=ScheduleType.CRON)
    cron_expression = models.CharField(max_length=100, blank=True, help_text="5 fields: minute hour day month weekday.")
    interval_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(ONE_YEAR)],
        help_text="Ticks at whole multiples of this many seconds since 1970-01-01 UTC.",
    )
    run_at = models.DateTimeField(null=True, blank=True, help_text="For a one-off job: when it runs.")
    timezone = models.CharField(
        max_length=64,
        default="UTC",
        help_text="IANA time zone of the job's schedule and of the times shown.",
    )
    enabled = models.BooleanField(default=True)
    # how
    engine = models.CharField(max_length=20, choices=Engine.choices, default=Engine.APSCHEDULER)
    queue = models.CharField(max_length=100, default="default", validators=[name_validator])
    priority = models.PositiveSmallIntegerField(
        default=5, validators=[MaxValueValidator(9)], help_text="0 (first) to 9 (last)."
    )
    timeout_seconds = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)], help_text="Empty: the handler's default."
    )
    max_retries = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(100)], help_text="Empty: the handler's default."
    )
    retry_backoff_seconds = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="First retry delay, doubled each attempt. Empty: the handler's default.",
    )
    jitter_seconds = models.PositiveIntegerField(default=0, validators=[MaxValueValidator(3600)])
    misfire_grace_seconds = models.PositiveIntegerField(
        default=default_misfire_grace, help_text="A fire later than this after its time is skipped (and recorded)."
    )
    coalesce = models.BooleanField(default=True, help_text="After downtime, run missed fires once instead of each.")
    max_running = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1)], help_text="Runs of this job allowed at the same time."
    )
    # alerts (tasks_app/alerts/)
    alert_after_failures = models.PositiveSmallIntegerField(
        default=0,
        db_default=0,
        validators=[MaxValueValidator(1000)],
        help_text="Alert after this many failed or timed-out runs in a row (a slot's retries count once); 0: off.",
    )
    alert_when_overdue = models.BooleanField(
        default=True,
        db_default=True,
        help_text="Alert when a slot passes its misfire grace with no run (engine down, job stuck).",
    )
    alert_emails = models.CharField(
        max_length=1000,
        blank=True,
        default="",
        db_default="",
        validators=[recipients.validate_emails],
        help_text="This job's own alert recipients, comma-separated (besides ADMINS and TASKHUB_ALERT_EMAILS).",
    )
    declared_in_code = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        permissions = [("run_job", "Can run a job now")]
        constraints = [
            models.CheckConstraint(condition=in_choices("engine", Engine), name="job_engine_known"),
            models.CheckConstraint(
                condition=(
                    Q(schedule_type="cron")
                    & ~Q(cron_expression="")
                    & Q(interval_seconds__isnull=True)
                    & Q(run_at__isnull=True)
                )
                | (
                    Q(schedule_type="interval")
                    & Q(cron_expression="")
                    & Q(interval_seconds__gte=1)
                    & Q(interval_seconds__lte=ONE_YEAR)
                    & Q(run_at__isnull=True)
                )
                | (
                    Q(schedule_type="once")
                    & Q(cron_expression="")
                    & Q(interval_seconds__isnull=True)
                    & Q(run_at__isnull=False)
                ),
                name="job_schedule_fields_match_type",
            ),
            models.CheckConstraint(condition=Q(priority__lte=9), name="job_priority_0_to_9"),
            models.CheckConstraint(condition=Q(max_running__gte=1), name="job_max_running_positive"),
        ]

    def __str__(self):
        return self.name

    # -- validation ----------------------------------------------------------------------
    def save(self, *args, **kwargs):
        """Validate on every save, so code that skips ``full_clean()`` cannot store a broken job."""
        self.full_clean()
        super().save(*args, **kwargs)

    @classmethod
    def from_db(cls, db, field_names, values):
        """A row as read, its ``SHARED_TEXT`` values shared with every other row's (``sys.intern``)."""
        values = [
            sys.intern(value) if type(value) is str and name in SHARED_TEXT else value
            for name, value in zip(field_names, values, strict=True)
        ]
        return super().from_db(db, field_names, values)

    def clean_fields(self, exclude=None):
        """Django's field checks, after refusing what they would get wrong: text Postgres cannot
        store (a NUL, a surrogate), and fractions Django would round (1.5 into 1).

        Kwargs that cannot be stored skip Django's own check, which recurses and raises on deep
        ones; ``clean()`` refuses them with the reason (``registry.KwargsError``).
        """
        exclude = set(exclude or ())
        self.alert_emails = recipients.normalize(self.alert_emails)  # a list (declared jobs) or a line, stored as one
        errors = {name: [message] for name, message in number_errors(self).items()}
        for field in self._meta.concrete_fields:
            value = getattr(self, field.attname)
            bad = isinstance(value, str) and field.name not in exclude and json_limits.unstorable_text(value)
            if bad:
                errors[field.name] = [f"{field.verbose_name.capitalize()} may not contain {bad}."]
        if isinstance(self.kwargs, dict) and _unstorable(self.kwargs):
            exclude.add("kwargs")
        try:
            super().clean_fields(exclude=exclude | set(errors))
        except ValidationError as exc:
            errors.update(exc.message_dict)
        if errors:
            raise ValidationError(errors)

    def clean(self):
        if self._holds_refused_values():
            return  # clean_fields said which; the checks below read those fields as text and times
        self._clear_other_schedule_fields()
        errors = {}
        for check in (self._check_handler, self._check_timezone, self._check_schedule):
            try:
                check()
            except ValidationError as exc:
                errors.update(exc.message_dict)
        if errors:
            raise ValidationError(errors)

    def _holds_refused_values(self) -> bool:
        """Whether a text or time field still holds a value ``clean_fields`` refused (``clean`` runs all the same)."""
        for field in self._meta.concrete_fields:
            value = getattr(self, field.attname)
            if isinstance(field, models.CharField | models.TextField) and not isinstance(value, str | None):
                return True
            if isinstance(field, models.DateTimeField) and not isinstance(value, dt.datetime | None):
                return True
        return False

    def _clear_other_schedule_fields(self):
        if self.schedule_type != ScheduleType.CRON:
            self.cron_expression = ""
        if self.schedule_type != ScheduleType.INTERVAL:
            self.interval_seconds = None
        if self.schedule_type != ScheduleType.ONCE:
            self.run_at = None
        self.cron_expression = " ".join((self.cron_expression or "").split())

    def _check_handler(self):
        if not self.handler:
            return  # the field's own "required" error
        try:
            spec = registry.registry.get(self.handler)
        except registry.UnknownHandler:
            raise ValidationError(
                {
                    "handler": f"Unknown handler '{self.handler}'. Registered: "
                    f"{', '.join(registry.registry.names()) or 'none'}."
                }
            )
        try:
            spec.validate_kwargs(self.kwargs)
        except registry.KwargsError as exc:
            raise ValidationError({"kwargs": str(exc)})

    def _check_timezone(self):
        try:
            slots.validate_timezone(self.timezone)
        except slots.ScheduleError as exc:
            raise ValidationError({"timezone": str(exc)})

    def _check_schedule(self):
        if self.schedule_type == ScheduleType.CRON:
            if not self.cron_expression:
                raise ValidationError({"cron_expression": "A cron job needs a cron expression."})
            # In the job's own zone, through the engines' slot function: a time that only ever
            # falls into a daylight-saving gap never fires there.
            zone = self.timezone if self.timezone in slots.known_zones() else "UTC"
            try:
                slots.validate_cron(self.cron_expression, zone)
            except slots.ScheduleError as exc:
                raise ValidationError({"cron_expression": str(exc)})
        elif self.schedule_type == ScheduleType.INTERVAL and self.interval_seconds is None:
            raise ValidationError({"interval_seconds": "An interval job needs its interval in seconds."})
        elif self.schedule_type == ScheduleType.ONCE:
            self._check_run_at()

    def _check_run_at(self):
        if self.run_at is None:
            raise ValidationError({"run_at": "A one-off job needs the time it runs at."})
        if timezone.is_naive(self.run_at):
            raise ValidationError({"run_at": "The time must include a time zone."})
        stored = None if self._state.adding else Job.objects.filter(pk=self.pk).values_list("run_at", flat=True).first()
        if self.run_at != stored and self.run_at <= timezone.now():
            raise ValidationError({"run_at": "The time must be in the future."})

    def validate_constraints(self, exclude=None):
        """Nothing to add: each check constraint repeats a field validator or ``clean()``, which say
        what is wrong in words, and the database enforces them all the same. (Django would spend
        a query on each, on every save; ``test_every_check_constraint_has_a_validator`` holds this.)"""

    # -- schedule ------------------------------------------------------------------------
    def next_fire_times(self, count: int, after: dt.datetime | None = None) -> list[dt.datetime]:
        """The next ``count`` fire times strictly after ``after`` (default: now), UTC-aware.

        A one-off job whose slot has a run has none left: the ``once_fired`` annotation says so
        (``JobQuerySet.with_once_fired()``) while ``run_at`` is unchanged, else one query does.
        """
        after = after or timezone.now()
        if self.schedule_type == ScheduleType.ONCE and self.pk:
            annotated = hasattr(self, "once_fired") and getattr(self, "once_fired_for", None) == self.run_at
            fired = self.once_fired if annotated else self.runs.filter(scheduled_for=self.run_at).exists()
            if fired:
                return []
        return slots.fire_times(
            self.schedule_type,
            cron_expression=self.cron_expression,
            timezone=self.timezone,
            interval_seconds=self.interval_seconds,
            run_at=self.run_at,
            after=after,
            count=count,
        )

    def schedule_problem(self) -> str | None:
        """Why the engines cannot schedule this row as stored (one line), or None: see ``problems.py``."""
        return problems.schedule_problem(self)

    def slot_at(self, at: dt.datetime) -> dt.datetime | None:
        """The slot (``scheduled_for``) a scheduler waking at ``at`` fires."""
        return slots.slot_at(self.schedule_type, **self.schedule_fields, at=at)

    @property
    def schedule_fields(self) -> dict:
        """The schedule as ``slots.py`` takes it (type apart)."""
        return {
            "cron_expression": self.cron_expression,
            "timezone": self.timezone,
            "interval_seconds": self.interval_seconds,
            "run_at": self.run_at,
        }

    def iter_fire_times(self, after: dt.datetime):
        """Fire times strictly after ``after``, lazily, from the schedule alone (no look at history)."""
        return slots.iter_fire_times(self.schedule_type, **self.schedule_fields, after=after)

    def schedule_in_words(self) -> str:
        return describe_schedule(self)

    # -- effective settings (the job's own, else the handler's defaults) -------------------
    @property
    def spec(self) -> "registry.HandlerSpec":
        return registry.registry.get(self.handler)

    def effective_timeout(self) -> float | None:
        return self.timeout_seconds or self.spec.timeout

    def effective_retries(self) -> int:
        return self.spec.retries if self.max_retries is None else self.max_retries

    def effective_backoff(self) -> float:
        return self.spec.retry_backoff if self.retry_backoff_seconds is None else self.retry_backoff_seconds
