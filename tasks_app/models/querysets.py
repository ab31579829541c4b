"""Job queryset methods. Every bulk change goes through here so it bumps the change marker.

``QuerySet.update()`` and ``bulk_*`` send no signals (the trap django-celery-beat users
hit, #694); these overrides bump the marker and stamp ``updated_at`` in the same
transaction, so engines see bulk admin actions as quickly as single saves.
"""

import collections

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Exists, F, OuterRef, Q, Subquery
from django.utils import timezone

from tasks_app.models import changes
from tasks_app.models.choices import Engine

SCHEDULE_FIELDS = (
    "id",
    "name",
    "handler",
    "engine",
    "enabled",
    "schedule_type",
    "cron_expression",
    "timezone",
    "interval_seconds",
    "run_at",
    "jitter_seconds",
    "misfire_grace_seconds",
    "coalesce",
    "updated_at",
)


class JobQuerySet(models.QuerySet):
    def update(self, **fields):
        with transaction.atomic(using=self.db):
            ids = list(self.values_list("pk", flat=True))
            count = super().update(**{"updated_at": timezone.now(), **fields}) if ids else 0
            if ids:
                changes.bump(ids, using=self.db)
        return count

    def delete(self):
        with transaction.atomic(using=self.db):
            ids = list(self.values_list("pk", flat=True))
            result = super().delete()
            if ids:
                changes.bump(ids, using=self.db)
        return result

    def bulk_create(self, objs, *args, **kwargs):
        objs = list(objs)
        self._validate(objs, check_names=not (kwargs.get("ignore_conflicts") or kwargs.get("update_conflicts")))
        with transaction.atomic(using=self.db):
            created = super().bulk_create(objs, *args, **kwargs)
            ids = [o.pk for o in created if o.pk]
            if len(ids) < len(created):  # ignore_conflicts sets no primary keys: find the rows by name
                ids = list(self.filter(name__in=[o.name for o in created]).values_list("pk", flat=True))
            changes.bump(ids, using=self.db)
        return created

    def bulk_update(self, objs, fields, *args, **kwargs):
        objs = list(objs)
        self._validate(objs)
        now = timezone.now()
        for obj in objs:
            obj.updated_at = now  # auto_now is not applied by bulk_update
        with transaction.atomic(using=self.db):
            count = super().bulk_update(objs, [*fields, "updated_at"], *args, **kwargs)
            changes.bump([o.pk for o in objs], using=self.db)
        return count

    def _validate(self, objs, check_names: bool = True) -> None:
        """``full_clean`` each job, with one query for the unique names of all of them instead of one each."""
        for obj in objs:
            obj.full_clean(validate_unique=False)
        if not check_names:
            return
        names = collections.Counter(obj.name for obj in objs)
        taken = set(
            self.model._default_manager.using(self.db)
            .filter(name__in=list(names))
            .exclude(pk__in=[obj.pk for obj in objs if obj.pk])
            .values_list("name", flat=True)
        )
        for obj in objs:
            if obj.name in taken or names[obj.name] > 1:
                raise ValidationError({"name": [obj.unique_error_message(type(obj), ("name",))]})

    # -- the operations the admin's actions and the commands use --------------------------
    def enable(self) -> int:
        return len(self.change_to(enabled=True))

    def pause(self) -> int:
        return len(self.change_to(enabled=False))

    def switch_engine(self, engine: str) -> int:
        return len(self.change_to(engine=engine))

    def change_to(self, **fields) -> list:
        """Set ``fields`` on the jobs where one differs; those jobs, as they were before (for the audit trail).

        The rows stay locked until the transaction ends, so of two people pausing one job at once
        only one changes it (and says so).
        """
        if "engine" in fields and fields["engine"] not in Engine.values:
            raise ValueError(f"unknown engine '{fields['engine']}' (choose from {', '.join(Engine.values)})")
        differs = Q()
        for name, value in fields.items():
            differs |= ~Q(**{name: value})
        with transaction.atomic(using=self.db):
            plain = self.model._default_manager.using(self.db)
            ids = list(self.values_list("pk", flat=True))
            jobs = list(plain.select_for_update().filter(differs, pk__in=ids).order_by("pk"))
            if jobs:
                plain.filter(pk__in=[job.pk for job in jobs]).update(**fields)
        return jobs

    def duplicate(self) -> list:
        """A paused copy of each job, named ``<name>-copy`` (``-copy-2``, ...)."""
        copies = []
        with transaction.atomic(using=self.db):
            for job in self:
                job.pk, job.id, job.enabled, job.declared_in_code = None, None, False, False
                job.name = self._free_name(f"{job.name}-copy")
                job._state.adding = True
                if job.schedule_type == "once" and job.run_at and job.run_at <= timezone.now():
                    job.run_at = timezone.now() + timezone.timedelta(hours=1)
                job.save()
                copies.append(job)
        return copies

    # -- what a scheduler process reads -------------------------------------------------------
    def for_scheduling(self, *extra: str):
        """Only the fields scheduling reads (and ``extra``): a scheduler holding 100,000 jobs in
        memory leaves out their kwargs and descriptions (read on demand, when a skipped slot is recorded)."""
        return self.only(*SCHEDULE_FIELDS, *extra)

    def load_for_scheduling(self, *extra: str) -> list:
        """``for_scheduling()`` as a list, read in chunks: a scheduler's full load.

        The whole result at once (psycopg's, then every instance) stayed with the process after it
        was freed: a beat holding 100,000 jobs kept 305 MB instead of 261.
        """
        return list(self.for_scheduling(*extra).iterator(chunk_size=2000))

    # -- annotations: what the admin's job list reads in its own query --------------------
    def with_once_fired(self):
        """Each job with ``once_fired``: whether a run holds its ``run_at`` slot (False unless one-off).

        ``Job.next_fire_times`` reads it instead of querying, while ``run_at`` still equals
        ``once_fired_for`` (the ``run_at`` it was computed for; a form may change it since).
        """
        fired = self._runs().filter(job=OuterRef("pk"), scheduled_for=OuterRef("run_at"))
        return self.annotate(once_fired=Exists(fired), once_fired_for=F("run_at"))

    def with_last_run(self):
        """Each job with its last run (by ``created_at``): id, status and slot, and ``with_once_fired()``."""
        last = self._runs().filter(job=OuterRef("pk")).order_by("-created_at")
        return self.annotate(
            last_run_id=Subquery(last.values("pk")[:1]),
            last_run_status=Subquery(last.values("status")[:1]),
            last_run_at=Subquery(last.values("scheduled_for")[:1]),
        ).with_once_fired()

    def _runs(self):
        # JobRun by the relation, not an import: its module imports Job, whose queryset this is.
        return self.model._meta.get_field("runs").related_model.objects

    def _free_name(self, base: str) -> str:
        taken = set(self.model.objects.filter(name__startswith=base).values_list("name", flat=True))
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}-{n}"
        return name
