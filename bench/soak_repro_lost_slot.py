"""Reproduces what the soak found: a slot whose claim has not committed when its process is SIGKILLed is lost.

``python bench/soak_repro_lost_slot.py apscheduler|celery`` starts a private Postgres and Redis
(``soak_services.py``), one job every 2 s on the engine, and its process (``runapscheduler``; or a
worker, with a beat). Once two runs succeeded, it holds the job's row lock from another session
(so the next fire's claim waits, as on a loaded machine or while Postgres stops), SIGKILLs the
process after 3.5 s, lets go of the lock, starts the process again and, 15 s later, lists the
slots between the first and the last recorded one that have no run row: neither run nor recorded
as ``skipped``. APScheduler already advanced its stored next run time, so its next leader never
sees the slot; the worker's message stays in Redis' ``unacked`` set until the visibility timeout
(7,200 s), and with no run row beat's reaper does not see it either. Exit 1 when a slot is lost.
"""

import datetime as dt
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common
from bench.soak_services import PrivatePostgres, PrivateRedis


def main(engine: str) -> int:
    bench = common.Bench("repro", [], keep_logs=True)
    pg, rd = PrivatePostgres(bench.log_dir), PrivateRedis(bench.log_dir)
    try:
        pg.start(), rd.start(), pg.wait_ready(), rd.wait_ready()
        pg.create_database("repro")
        # Redelivery after 5 s instead of 60, so the re-sent slot shows within the wait below.
        env = common.process_env("repro", rd.url, DATABASE_URL=f"{pg.url}/repro", TASKHUB_REDELIVER_AFTER_SECONDS="5")
        subprocess.run([common.PYTHON, "manage.py", "migrate", "-v0"], cwd=common.ROOT, env=env, check=True)
        os.environ.update(env, TASKHUB_LOG_LEVEL="WARNING")
        import django

        django.setup()
        import psycopg

        from tasks_app.models import Job, JobRun

        job = Job.objects.create(
            name="a",
            handler="number_sum",
            kwargs={"x": 1, "y": 2},
            schedule_type="interval",
            interval_seconds=2,
            engine=engine,
        )

        def start(n: int):
            if engine == "apscheduler":
                return bench.start(f"runapscheduler-{n}", ["manage.py", "runapscheduler"], env)
            return bench.worker(f"worker-{n}", "repro", rd.url, **env)

        proc = start(1)
        if engine == "celery":
            bench.beat("beat", "repro", rd.url, **env)
        common.wait_until(lambda: JobRun.objects.filter(job=job, status="succeeded").count() >= 2, 90)
        with psycopg.connect(f"{pg.url}/repro") as locker:
            locker.execute("SELECT 1 FROM tasks_app_job WHERE id = %s FOR UPDATE", [job.pk])
            time.sleep(3.5)  # a fire comes; its claim waits for the row lock
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            locker.rollback()
        start(2)
        time.sleep(25)
        rows = list(JobRun.objects.filter(job=job).order_by("scheduled_for").values_list("scheduled_for", flat=True))
        after = rows[0] - dt.timedelta(seconds=1)
        owed = itertools.takewhile(lambda s: s <= rows[-1], job.iter_fire_times(after=after))
        lost = [s for s in owed if s not in rows]
        print(f"{engine}: slots with no run row after a SIGKILL during their claim: {[s.isoformat() for s in lost]}")
        if engine == "celery":
            import redis

            print(f"celery: messages in Redis' unacked set: {redis.Redis.from_url(rd.url).hlen('unacked')}")
        return 1 if lost else 0
    finally:
        bench.stop_all()
        common._close_django_connections()
        for service in (rd, pg):
            service.stop()
            service.remove()
        print(f"logs: {bench.log_dir}")


if __name__ == "__main__":
    if sys.argv[1:] not in (["apscheduler"], ["celery"]):
        sys.exit("usage: soak_repro_lost_slot.py apscheduler|celery")
    sys.exit(main(sys.argv[1]))
