"""The soak's jobs, the edits it makes to them, and the slots they owed.

What it is: ``job_specs`` (30 jobs on both engines: fast intervals, slow jobs held by
``max_running``, flaky jobs with retries, cron jobs in several time zones, all running
``bench.soak_handlers.soak_effect``), ``Jobs`` (creates them and makes the soak's edits
through ``Job.save()``, as the admin does: switch engine, edit, pause, resume — keeping a
timeline of every job's schedule), and ``Jobs.due`` (the slots the timeline owed between
two instants, computed with the same slot function the engines use).

A slot within ``EDIT_MARGIN`` of one of its job's edits is not counted as due: an engine
applies an edit within a moment, and a slot in that moment may go either way.
"""

import datetime as dt

from django.utils import timezone

EDIT_MARGIN = dt.timedelta(seconds=2)
ZONES = ["UTC", "Europe/Amsterdam", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
SCHEDULE_FIELDS = ("engine", "enabled", "schedule_type", "cron_expression", "timezone", "interval_seconds", "run_at")


def job_specs(rng) -> list[dict]:
    engines = ["celery", "apscheduler"]
    specs = []
    for i in range(10):
        specs.append({"name": f"fast-{i}", "interval_seconds": rng.choice([2, 3, 4, 5]), "kwargs": {}})
    for i in range(4):
        specs.append(
            {
                "name": f"slow-{i}",
                "interval_seconds": 4,
                "max_running": 1 + i % 2,
                "kwargs": {"seconds": round(rng.uniform(3, 6), 1)},
            }
        )
    for i in range(8):
        specs.append(
            {
                "name": f"flaky-{i}",
                "interval_seconds": rng.choice([3, 4, 5]),
                "max_retries": 3,
                "retry_backoff_seconds": 1.0,
                "kwargs": {"fail_percent": 40, "seconds": 0.2},
            }
        )
    for i in range(8):
        specs.append(
            {
                "name": f"cron-{i}",
                "schedule_type": "cron",
                "cron_expression": "* * * * *",
                "timezone": ZONES[i % len(ZONES)],
                "kwargs": {"seconds": 0.5},
            }
        )
    for i, spec in enumerate(specs):
        spec.setdefault("schedule_type", "interval")
        spec.update(handler="soak_effect", engine=engines[i % 2])
    return specs


class Jobs:
    """The soak's jobs by name, and each one's timeline of ``(since, schedule)``."""

    def __init__(self, rng):
        self.rng = rng
        self.timeline: dict[str, list[tuple[dt.datetime, dict]]] = {}
        self.paused: set[str] = set()

    def create(self, specs: list[dict]) -> None:
        from tasks_app.models import Job

        for spec in specs:
            self._note(Job.objects.create(**spec))

    def _note(self, job) -> None:
        self.timeline.setdefault(job.name, []).append((job.updated_at, {f: getattr(job, f) for f in SCHEDULE_FIELDS}))

    def _edit(self, name: str, **changes):
        from tasks_app.models import Job

        job = Job.objects.get(name=name)
        for field, value in changes.items():
            setattr(job, field, value)
        job.save()
        self._note(job)
        return job

    def engine_at(self, name: str, moment: dt.datetime) -> str:
        """The engine ``name`` was on at ``moment``, by the timeline."""
        entries = self.timeline[name]
        return next((s for since, s in reversed(entries) if since <= moment), entries[0][1])["engine"]

    def names(self) -> list[str]:
        return sorted(self.timeline)

    # -- the soak's edits (each returns a line for the log) ---------------------------------
    def switch(self) -> str:
        name = self.rng.choice(self.names())
        job = self._edit(name, engine="apscheduler" if self._engine(name) == "celery" else "celery")
        return f"switch {name} to {job.engine}"

    def edit(self) -> str:
        name = self.rng.choice([n for n in self.names() if not n.startswith("cron")])
        if self.rng.random() < 0.5:
            job = self._edit(name, interval_seconds=self.rng.choice([2, 3, 4, 5, 6]))
            return f"edit {name}: every {job.interval_seconds} s"
        from tasks_app.models import Job

        kwargs = dict(Job.objects.get(name=name).kwargs, seconds=round(self.rng.uniform(0, 2), 1))
        self._edit(name, kwargs=kwargs)
        return f"edit {name}: kwargs {kwargs}"

    def pause(self) -> str | None:
        names = [n for n in self.names() if n not in self.paused]
        name = self.rng.choice(names)
        self._edit(name, enabled=False)
        self.paused.add(name)
        return name

    def resume(self, name: str) -> None:
        self._edit(name, enabled=True)
        self.paused.discard(name)

    def pause_all(self) -> None:
        for name in self.names():
            if name not in self.paused:
                self._edit(name, enabled=False)

    def _engine(self, name: str) -> str:
        from tasks_app.models import Job

        return Job.objects.values_list("engine", flat=True).get(name=name)

    # -- what was owed -----------------------------------------------------------------------
    def due(self, start: dt.datetime, end: dt.datetime) -> set[tuple[str, dt.datetime]]:
        """The ``(job, slot)`` pairs owed in ``[start, end]``, away from the job's edits."""
        from tasks_app.scheduling import slots

        owed = set()
        for name, entries in self.timeline.items():
            edits = [since for since, _ in entries]
            for index, (since, schedule) in enumerate(entries):
                until = edits[index + 1] if index + 1 < len(edits) else end
                low, high = max(since + EDIT_MARGIN, start), min(until - EDIT_MARGIN, end)
                if not schedule["enabled"] or low >= high:
                    continue
                fields = {k: schedule[k] for k in ("cron_expression", "timezone", "interval_seconds", "run_at")}
                for slot in slots.iter_fire_times(schedule["schedule_type"], **fields, after=low):
                    if slot > high:
                        break
                    owed.add((name, slot))
        return owed


def now() -> dt.datetime:
    return timezone.now()
