"""Jobs declared in code (``TASKHUB["JOBS"]``), upserted into the job table by ``sync_jobs``."""

from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import transaction

from tasks_app import conf
from tasks_app.exceptions import DeclarationError
from tasks_app.models import Job


def sync_declared(declared=None, prune: bool = False) -> dict:
    """Create or update every declared job (all or nothing); with ``prune``, pause declared jobs no longer listed."""
    declared = conf.get("JOBS") if declared is None else declared
    counts = {"created": 0, "updated": 0, "unchanged": 0, "paused": 0}
    with transaction.atomic():
        for fields in declared:
            counts[_upsert(dict(fields))] += 1
        if prune:
            names = [f.get("name") for f in declared]
            counts["paused"] = Job.objects.filter(declared_in_code=True).exclude(name__in=names).pause()
    return counts


def _upsert(fields: dict) -> str:
    name = fields.get("name") or ""
    label = f"job '{name}'" if name else "a declared job"
    for key in fields:
        try:
            Job._meta.get_field(key)
        except FieldDoesNotExist:
            raise DeclarationError(f"{label}: unknown field '{key}'") from None
    job = Job.objects.filter(name=name).first() if name else None
    outcome = "created" if job is None else "updated"
    job = job or Job(name=name)
    if outcome == "updated" and all(getattr(job, k) == v for k, v in fields.items()) and job.declared_in_code:
        return "unchanged"
    for key, value in fields.items():
        setattr(job, key, value)
    job.declared_in_code = True
    try:
        job.save()
    except ValidationError as exc:
        details = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
        raise DeclarationError(f"{label}: {details}") from None
    return outcome
