"""The dashboard's two rankings of jobs in Postgres SQL: the failing jobs and the slowest jobs.

What it is: one statement each, shaped so that its cost follows the runs it must read and not
the jobs there are. The failing jobs are found by grouping (a job's last success, then its
failures since), not by asking each job for its latest outcome: at 100,000 jobs those per-job
look-ups cost 150-550 ms, and the planner's guess at how many jobs pass such a filter flips it
between reading the jobs that ever failed and reading every job. The slowest jobs rank the
window's runs by their longest (cheap) to find the few jobs that can rank, sort only those for a
percentile, and look up the names of the rows shown: grouping by ``(job_id, name)`` with a
percentile for each sorted all 100,000 jobs by name and made 100,000 little sorts.

What it is not: the only way. ``dashboard.py`` keeps the ORM form for other databases (SQLite in
tests without Postgres), which gives the same rows.
"""

import datetime as dt

from django.db import connection

from tasks_app.models import Job, JobRun, RunStatus

FAILED = (RunStatus.FAILED.value, RunStatus.TIMED_OUT.value)
OUTCOMES = (RunStatus.SUCCEEDED.value, *FAILED)


def failing_jobs(limit: int) -> list[Job]:
    """Jobs with a failure after their last success, the longest failing first, annotated as ``dashboard`` says.

    ``failing_since`` is the first failure after the last success; ``last_outcome``, ``last_run_id``
    and ``last_error`` come from the latest finished outcome, looked up only for the ``limit`` jobs shown.
    """
    return list(Job.objects.raw(_failing_sql(), [*FAILED, RunStatus.SUCCEEDED.value, limit, *OUTCOMES]))


def _failing_sql() -> str:
    run, job = JobRun._meta.db_table, Job._meta.db_table
    return f"""
        WITH failed AS (
            SELECT job_id, finished_at FROM {run} WHERE status IN (%s, %s) AND finished_at IS NOT NULL
        ), last_success AS (
            SELECT job_id, MAX(finished_at) AS finished_at FROM {run}
            WHERE status = %s AND finished_at IS NOT NULL AND job_id IN (SELECT job_id FROM failed)
            GROUP BY job_id
        ), streak AS (
            SELECT failed.job_id, MIN(failed.finished_at) AS failing_since
            FROM failed LEFT JOIN last_success ON last_success.job_id = failed.job_id
            WHERE last_success.finished_at IS NULL OR failed.finished_at > last_success.finished_at
            GROUP BY failed.job_id
        ), shown AS (
            SELECT job.*, streak.failing_since FROM streak JOIN {job} job ON job.id = streak.job_id
            ORDER BY streak.failing_since, job.name LIMIT %s
        )
        SELECT shown.*, latest.status AS last_outcome, latest.id AS last_run_id, latest.error AS last_error
        FROM shown CROSS JOIN LATERAL (
            SELECT id, status, error FROM {run}
            WHERE job_id = shown.id AND status IN (%s, %s, %s) AND finished_at IS NOT NULL
            ORDER BY finished_at DESC, id DESC LIMIT 1
        ) latest
        ORDER BY shown.failing_since, shown.name
    """


def slowest_jobs(now: dt.datetime, since: dt.datetime, limit: int) -> list[dict]:
    """``[{"job_id", "job__name", "p95", "runs"}]``: the longest p95 durations of runs created in ``[since, now]``.

    A p95 is never above the job's longest run, so the ``limit`` jobs with the longest runs give a
    floor: the lowest of their p95s is at most the ``limit``-th p95 of all. Only jobs with a run at
    least that long can rank, and only theirs are sorted for a percentile (at 100,000 jobs, a
    percentile for each job cost more than reading the runs). Ties at the last place are broken by
    name, as every job tied there is among them.
    """
    window = [since, now]
    with connection.cursor() as cursor:
        cursor.execute(_slowest_sql(), [*window, *window, limit, *window, limit])
        return [
            {"job_id": job_id, "job__name": name, "p95": p95, "runs": runs}
            for job_id, name, p95, runs in cursor.fetchall()
        ]


def _slowest_sql() -> str:
    run, job = JobRun._meta.db_table, Job._meta.db_table
    timed = "created_at >= %s AND created_at <= %s AND duration_seconds IS NOT NULL"
    p95 = "percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_seconds)"
    return f"""
        WITH longest AS (
            SELECT job_id, MAX(duration_seconds) AS seconds FROM {run} WHERE {timed} GROUP BY job_id
        ), floor AS (
            SELECT {p95} AS p95 FROM {run}
            WHERE {timed} AND job_id IN (SELECT job_id FROM longest ORDER BY seconds DESC LIMIT %s)
            GROUP BY job_id
        ), ranked AS (
            SELECT job_id, {p95} AS p95, COUNT(*) AS runs FROM {run}
            WHERE {timed} AND job_id IN (SELECT job_id FROM longest WHERE seconds >= (SELECT MIN(p95) FROM floor))
            GROUP BY job_id
        )
        SELECT ranked.job_id, job.name, ranked.p95, ranked.runs
        FROM ranked JOIN {job} job ON job.id = ranked.job_id ORDER BY ranked.p95 DESC, job.name LIMIT %s
    """
