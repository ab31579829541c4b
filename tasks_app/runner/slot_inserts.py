"""The one-statement claim: insert the running rows of many slots at once, where nothing stands in the way.

On Postgres one ``INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING`` claims a batch of slots
(one slot, or a whole tick's). A slot inserts its run only when its row does not exist yet, its
job runs fewer than ``max_running`` runs, and a *lane* is free — one of the job's ``max_running``
places, each held by at most one running run (a partial unique index on ``(job, lane)``), which
makes two claims racing for the last place impossible without a lock. Everything else inserts
nothing and is left to the locked claim (``claims.py``), which decides between a duplicate, a
take-over and an overlap. The job rows are read in the same statement, ``FOR KEY SHARE``: a
locked claim of the same job (``FOR UPDATE``) is waited for, other inserts are not. Each claimed
run comes back with its job.

The statement is prepared on its connection (``prepared.py``): parsed once, and planned once too
where Postgres keeps a generic plan. One slot — a Celery message's — comes as scalars, so the
generic plan knows it reads one row and keeps it; a batch comes as arrays, whose length a generic
plan cannot know, so Postgres plans it for its values each time. The running status the count
compares with is written in the text, not sent as a value: a plan made for any value could not
use the partial index ``jobrun_running`` and would read every run of the job.

What it is not: decisions about existing rows; other databases always take the locked claim.
"""

import datetime as dt
import functools
import os
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, connection, connections

from tasks_app.models import Job, JobRun, RunStatus, Trigger
from tasks_app.runner import prepared


@dataclass(frozen=True)
class Slot:
    """A slot an engine asks the runner to run: the job, its instant, the attempt, and who asked."""

    job_id: int
    scheduled_for: dt.datetime
    attempt: int = 1
    trigger: str = Trigger.SCHEDULE
    task_id: str = ""

    @property
    def key(self) -> tuple[int, dt.datetime]:
        return self.job_id, self.scheduled_for


# The columns each slot brings (an array each, unnested together); every other column of the new
# row is the same for the whole batch, except ``kwargs`` (the job's) and ``lane`` (the free one).
PER_SLOT = {"job_id": "bigint", "scheduled_for": "timestamptz", "attempt": "integer", "trigger": "text"}
PER_SLOT_TASK_ID = "celery_task_id"


def available() -> bool:
    return connection.vendor == "postgresql"


def insert_claims(slots: list[Slot], engine: str, running: dict) -> dict[tuple[int, dt.datetime], JobRun]:
    """Insert a ``running`` row for every slot that is free to run; the claimed runs by ``Slot.key``.

    ``running`` holds the values a claimed run starts with (status, started_at, worker, …).
    """
    if not slots:
        return {}
    sql, params = _statement(slots, engine, running)
    with prepared.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    job_fields, run_fields = Job._meta.concrete_fields, JobRun._meta.concrete_fields
    claimed = {}
    for row in rows:
        job_values, run_values = row[: len(job_fields)], row[len(job_fields) :]
        if run_values[0] is None:
            continue  # its slot had a row, or its job no free lane: the locked claim decides
        run = _instance(JobRun, run_fields, run_values)
        run.job = _instance(Job, job_fields, job_values)
        claimed[(run.job_id, run.scheduled_for)] = run
    return claimed


def _instance(model, fields, values):
    """A model instance from raw column values, converted as the ORM would (JSON columns come as text)."""
    db = connections[DEFAULT_DB_ALIAS]  # the wrapper itself: ``connection`` is a proxy, a lookup per attribute
    converted = [
        field.from_db_value(value, None, db) if hasattr(field, "from_db_value") else value
        for field, value in zip(fields, values, strict=True)
    ]
    return model.from_db(db.alias, [f.attname for f in fields], converted)


def _statement(slots: list[Slot], engine: str, running: dict) -> tuple[str, list]:
    one = len(slots) == 1
    sql, template_fields = _sql(one)
    template = JobRun(engine=engine, kwargs={}, **running)
    db = connections[DEFAULT_DB_ALIAS]
    params = [field.get_db_prep_save(getattr(template, field.attname), db) for field in template_fields]
    # Each process starts its search for a free lane at its own place: two processes claiming runs
    # of one job at once would otherwise both take its lowest free lane, and one would wait for the
    # other's commit, find the lane taken and fall back to the locked claim.
    params.append(os.getpid())
    per_slot = [
        [s.job_id for s in slots],
        [s.scheduled_for for s in slots],
        [s.attempt for s in slots],
        [str(s.trigger) for s in slots],
        [s.task_id for s in slots],
    ]
    if one:
        per_slot = [values[0] for values in per_slot]
    return sql, per_slot + params


@functools.cache
def _sql(one: bool) -> tuple[str, list]:
    """The statement's text for one slot (scalars) or a batch (arrays), and the fields given as parameters."""
    quote = connection.ops.quote_name
    job_table, run_table = quote(Job._meta.db_table), quote(JobRun._meta.db_table)
    columns, values, template_fields = [], [], []
    for field in JobRun._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(quote(field.column))
        if field.column in PER_SLOT or field.column == PER_SLOT_TASK_ID:
            values.append(f"w.{quote(field.column)}")
        elif field.name == "kwargs":
            values.append(f"j.{quote(Job._meta.get_field('kwargs').column)}")
        elif field.name == "lane":
            values.append("free.lane")
        else:
            values.append("%s")
            template_fields.append(field)
    kinds = [*PER_SLOT.values(), "text"]
    names = [quote(c) for c in (*PER_SLOT, PER_SLOT_TASK_ID)]
    job_columns = ", ".join(f"j.{quote(f.column)}" for f in Job._meta.concrete_fields)
    run_columns = ", ".join(f"c.{quote(f.column)}" for f in JobRun._meta.concrete_fields)
    if one:
        slots = f"(VALUES ({', '.join(f'%s::{kind}' for kind in kinds)}))"
    else:
        slots = f"unnest({', '.join(f'%s::{kind}[]' for kind in kinds)})"
    # Running runs without a lane (written before lanes, or by hand) count too. Two counts, each on
    # its partial index (``jobrun_one_run_per_lane``, ``jobrun_running``): one count with an ``OR``
    # reads every run the job ever had, and a claim would slow down as its history grows.
    running = _literal(RunStatus.RUNNING)
    lanes = f"(SELECT r.lane FROM {run_table} r WHERE r.job_id = j.id AND r.lane IS NOT NULL)"
    sql = f"""
        WITH w AS (SELECT * FROM {slots} AS w({", ".join(names)})),
        j AS (SELECT * FROM {job_table} WHERE id IN (SELECT job_id FROM w) FOR KEY SHARE),
        c AS (
            INSERT INTO {run_table} ({", ".join(columns)})
            SELECT {", ".join(values)}
            FROM w JOIN j ON j.id = w.job_id
            CROSS JOIN LATERAL (
                SELECT n AS lane FROM generate_series(1, j.max_running) n WHERE n NOT IN {lanes}
                ORDER BY (n + %s) %% j.max_running LIMIT 1
            ) free
            WHERE free.lane IS NOT NULL AND (
                SELECT count(*) FROM {run_table} r WHERE r.job_id = j.id AND r.lane IS NOT NULL
            ) + (
                SELECT count(*) FROM {run_table} r WHERE r.job_id = j.id AND r.status = {running} AND r.lane IS NULL
            ) < j.max_running
            ON CONFLICT DO NOTHING
            RETURNING *
        )
        SELECT {job_columns}, {run_columns}
        FROM w JOIN j ON j.id = w.job_id
        LEFT JOIN c ON c.job_id = w.job_id AND c.scheduled_for = w.scheduled_for
    """
    return sql, template_fields


def _literal(value: str) -> str:
    """A constant of ours (a status) as an SQL string literal."""
    if not value.isidentifier():
        raise ValueError(f"not a plain word: {value!r}")
    return f"'{value}'"
