"""Jobs as files: what ``export_jobs`` writes and ``import_jobs`` (and the admin's import) applies.

A file is a list of jobs sorted by name, each a mapping of ``FILE_FIELDS`` in the model's
order (no ids, no record-keeping), in JSON or YAML: the shape django-import-export's JSON and
YAML formats read too, so one file moves between the command and the admin. Times are ISO
8601 in UTC. Importing is all or nothing, through ``declared.upsert`` and so ``Job.full_clean``.

What it is not: no validation of a job's fields here (the model's), only of the file's shape.
"""

import dataclasses
import datetime as dt
import json

import yaml
from django.core.exceptions import ValidationError
from django.db import DatabaseError, transaction

from tasks_app.exceptions import TaskhubError
from tasks_app.models import Job
from tasks_app.models.declared import EDITABLE_FIELDS, upsert
from tasks_app.models.numbers import a_type

FILE_FIELDS = EDITABLE_FIELDS
FORMATS = ("json", "yaml")


class JobFileError(TaskhubError):
    """A file of jobs that cannot be read or applied; ``lines`` says why, one line per problem."""

    def __init__(self, lines: list[str]):
        super().__init__("; ".join(lines))
        self.lines = lines


# -- writing -------------------------------------------------------------------------------
def job_row(job: Job) -> dict:
    """A job as a file holds it: its ``FILE_FIELDS`` in order, times as UTC ISO text."""
    return {field: plain_value(getattr(job, field)) for field in FILE_FIELDS}


def plain_value(value):
    """A field's value as a file holds it: a time as UTC ISO 8601 text, anything else as it is."""
    return value.astimezone(dt.UTC).isoformat() if isinstance(value, dt.datetime) else value


def dump(rows: list[dict], fmt: str = "json") -> str:
    if fmt == "yaml":
        return yaml.safe_dump(rows, sort_keys=False, allow_unicode=True, default_flow_style=False, width=1000)
    return json.dumps(rows, indent=2, ensure_ascii=False) + "\n"


def export_text(names=(), fmt: str = "json") -> str:
    """Every job (or the ones named) as a file; ``JobFileError`` names the jobs that do not exist."""
    jobs = Job.objects.order_by("name")
    if names:
        jobs = jobs.filter(name__in=names)
        missing = sorted(set(names) - {job.name for job in jobs})
        if missing:
            raise JobFileError([f"no job named {', '.join(repr(n) for n in missing)}"])
    return dump([job_row(job) for job in jobs], fmt)


# -- reading -------------------------------------------------------------------------------
def parse(text: str) -> list[dict]:
    """The jobs of a JSON or YAML file, checked for shape: a list of mappings of known fields, names unique."""
    try:
        data = json.loads(text)
    except ValueError:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            where = getattr(exc, "problem_mark", None)
            at = f" (line {where.line + 1})" if where else ""
            raise JobFileError([f"not JSON or YAML: {getattr(exc, 'problem', None) or exc}{at}"]) from None
    if not isinstance(data, list):
        raise JobFileError([f"expected a list of jobs, got {_kind(data)}"])
    seen = set()
    for n, row in enumerate(data, 1):
        if not isinstance(row, dict):
            raise JobFileError([f"job #{n}: expected a mapping of fields, got {_kind(row)}"])
        name = row.get("name")
        if not isinstance(name, str) or not name:
            raise JobFileError([f"job #{n}: {'no name' if not name else 'its name must be text'}"])
        unknown = [key for key in row if key not in FILE_FIELDS]
        if unknown:
            raise JobFileError([f"job '{name}': unknown field '{unknown[0]}' (fields: {', '.join(FILE_FIELDS)})"])
        if name in seen:
            raise JobFileError([f"job '{name}': named twice in the file"])
        seen.add(name)
    return data


def _on(field: str) -> str:
    return "" if field == "__all__" else f"{field}: "


def _kind(value) -> str:
    return "nothing" if value is None else a_type(value)


# -- applying ------------------------------------------------------------------------------
@dataclasses.dataclass
class ImportResult:
    created: list[str] = dataclasses.field(default_factory=list)
    changed: list[tuple[str, list[str]]] = dataclasses.field(default_factory=list)
    unchanged: list[str] = dataclasses.field(default_factory=list)
    paused: list[str] = dataclasses.field(default_factory=list)

    def lines(self, dry_run: bool = False) -> list[str]:
        """What happened (or would), one line per job touched, then a summary."""
        create, change, pause = (
            ("would create", "would change", "would pause") if dry_run else ("created", "changed", "paused")
        )
        out = [f"{create} job '{name}'" for name in self.created]
        out += [f"{change} job '{name}': {', '.join(fields)}" for name, fields in self.changed]
        out += [f"{pause} job '{name}' (not in the file)" for name in self.paused]
        if not out:
            return [f"no changes ({len(self.unchanged)} job(s) unchanged)"]
        counts = f"{len(self.created)} created, {len(self.changed)} changed, {len(self.unchanged)} unchanged"
        summary = f"{counts}, {len(self.paused)} paused"
        return [*out, f"dry run, nothing changed: {summary}" if dry_run else summary]


def import_rows(rows: list[dict], dry_run: bool = False, prune: bool = False) -> ImportResult:
    """Apply ``rows`` (from ``parse``) in one transaction; with ``prune``, pause enabled jobs not in them.

    Every invalid job is reported (``JobFileError``, one ``job 'x': field: message`` line per
    problem) and nothing is changed; ``dry_run`` rolls back what it did and reports it all the same.
    """
    result, errors = ImportResult(), []
    with transaction.atomic():
        for row in rows:
            try:
                with transaction.atomic():
                    outcome, fields = upsert(dict(row))
            except ValidationError as exc:
                errors += [
                    f"job '{row['name']}': {_on(field)}{msg}"
                    for field, msgs in exc.message_dict.items()
                    for msg in msgs
                ]
                continue
            except DatabaseError as exc:  # what validation cannot see (a concurrent writer): still one line
                errors.append(f"job '{row['name']}': {str(exc).strip().splitlines()[0]}")
                continue
            if outcome == "created":
                result.created.append(row["name"])
            elif outcome == "updated":
                result.changed.append((row["name"], fields))
            else:
                result.unchanged.append(row["name"])
        if errors:
            raise JobFileError(errors)
        if prune:
            stale = Job.objects.exclude(name__in=[row["name"] for row in rows]).filter(enabled=True).order_by("name")
            result.paused = list(stale.values_list("name", flat=True))
            stale.pause()
        if dry_run:
            transaction.set_rollback(True)
    return result
