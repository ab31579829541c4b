"""Jobs declared in code (``TASKHUB["JOBS"]``), upserted into the job table by ``sync_jobs``;
``upsert``, which ``sync_jobs``, ``import_jobs`` and the admin's import share; and the demo
job a fresh ``bin/run`` makes for the README's examples (``create_demo_job``)."""

from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import transaction

from tasks_app import conf
from tasks_app.exceptions import DeclarationError
from tasks_app.models import Job

# What a person edits: every editable field but the key (no ids, no record-keeping).
EDITABLE_FIELDS = tuple(f.name for f in Job._meta.concrete_fields if f.editable and not f.primary_key)


def sync_declared(declared=None, prune: bool = False) -> dict:
    """Create or update every declared job (all or nothing); with ``prune``, pause declared jobs no longer listed."""
    declared = conf.get("JOBS") if declared is None else declared
    counts = {"created": 0, "updated": 0, "unchanged": 0, "paused": 0}
    with transaction.atomic():
        for fields in declared:
            counts[_upsert_declared(dict(fields))] += 1
        if prune:
            names = [f.get("name") for f in declared]
            counts["paused"] = Job.objects.filter(declared_in_code=True).exclude(name__in=names).pause()
    return counts


def _upsert_declared(fields: dict) -> str:
    name = fields.get("name") or ""
    label = f"job '{name}'" if name else "a declared job"
    unknown = unknown_fields(fields)
    if unknown:
        raise DeclarationError(f"{label}: unknown field '{unknown[0]}'")
    try:
        return upsert(fields, declared=True)[0]
    except ValidationError as exc:
        details = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
        raise DeclarationError(f"{label}: {details}") from None


def unknown_fields(fields: dict) -> list[str]:
    """The keys of ``fields`` that name no field of ``Job``."""
    unknown = []
    for key in fields:
        try:
            Job._meta.get_field(key)
        except FieldDoesNotExist:
            unknown.append(key)
    return unknown


def upsert(fields: dict, declared: bool = False) -> tuple[str, list[str]]:
    """Create or update the job named ``fields["name"]`` (a field left out keeps its value, or a new
    job's default); ``("created" | "updated" | "unchanged", the fields that changed)``.

    Compared after ``full_clean`` (which raises ``ValidationError``), so values in another form
    (an ISO time, a list of e-mails, a cron with extra spaces) compare equal to what is stored.
    ``declared`` marks the job as declared in code (``sync_jobs --prune`` pauses only those).
    """
    name = fields.get("name") or ""
    job = Job.objects.filter(name=name).first() if name else None
    before = editable_values(job) if job else {}
    job = job or Job(name=name)
    apply_fields(job, fields)
    changed = changed_fields(before, job)
    if before and not changed and (job.declared_in_code or not declared):
        return "unchanged", []
    job.declared_in_code = job.declared_in_code or declared
    job.save()
    return ("updated" if before else "created"), changed


def editable_values(job: Job) -> dict:
    return {key: getattr(job, key) for key in EDITABLE_FIELDS}


def apply_fields(job: Job, fields: dict) -> None:
    """Set ``fields`` on ``job`` and ``full_clean`` it, which puts each value in its stored form."""
    for key, value in fields.items():
        setattr(job, key, value)
    job.full_clean()


def changed_fields(before: dict, job: Job) -> list[str]:
    """The editable fields of ``job`` (cleaned) that differ from ``before`` (``editable_values``; empty: a new job)."""
    return [key for key in EDITABLE_FIELDS if not before or before[key] != getattr(job, key)]


DEMO_JOB = {
    "name": "demo-add-numbers",
    "description": "A demo for the README's trigger API examples: adds x and y. Delete it when you like.",
    "handler": "number_sum",
    "kwargs": {"x": 1, "y": 2},
    "engine": "apscheduler",
    "schedule_type": "cron",
    "cron_expression": "0 0 1 1 *",  # once a year: it runs when asked
    "timezone": "UTC",
}


def create_demo_job() -> tuple[Job, bool]:
    """The demo job, made unless a job of its name exists (which is left as it is); and whether it was made."""
    return Job.objects.get_or_create(name=DEMO_JOB["name"], defaults=DEMO_JOB)
