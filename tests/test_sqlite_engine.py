"""The embedded default, as a new user runs it: ``runapscheduler`` on a SQLite file, and a run now.

SQLite has no LISTEN/NOTIFY: the scheduler polls the change marker (every 0.5 s), whose
run-request row ``APSchedulerEngine.deliver`` bumps, so a run now starts within a poll, not at
the next periodic look for queued runs (every 15 s).
"""

import datetime as dt
import sqlite3
import subprocess
import sys

from tests.helpers import ROOT, clean_env, manage, python, wait_for


def test_run_now_on_sqlite_starts_within_a_poll_not_at_the_next_periodic_look(tmp_path):
    database = tmp_path / "taskhub.sqlite3"
    env = clean_env(SECRET_KEY="k", DATABASE_URL=f"sqlite:///{database}")
    assert manage("migrate", "-v0", env=env).returncode == 0
    created = python(
        "from tasks_app.models import Job\n"
        "Job.objects.create(name='sum', handler='number_sum', kwargs={'x': 1, 'y': 2}, engine='apscheduler',"
        " schedule_type='interval', interval_seconds=31536000)",
        env=env,
    )
    assert created.returncode == 0, created.stderr
    log = open(tmp_path / "apscheduler.log", "w")
    scheduler = subprocess.Popen(
        [sys.executable, "manage.py", "runapscheduler"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        assert wait_for(lambda: "apscheduler is leader" in (tmp_path / "apscheduler.log").read_text(), timeout=30)
        # It has just looked for queued runs (on taking the lead): the next periodic look is 15 s away.
        result = manage("run_job", "sum", "--via-engine", "--wait", "30", env=env)
        assert (result.returncode, result.stdout, result.stderr) == (0, "3\n", "")
    finally:
        scheduler.terminate()
        scheduler.wait(timeout=30)
    with sqlite3.connect(database) as db:
        [(asked, started)] = db.execute("SELECT scheduled_for, started_at FROM tasks_app_jobrun").fetchall()
    waited = dt.datetime.fromisoformat(started) - dt.datetime.fromisoformat(asked)
    assert waited < dt.timedelta(seconds=5), waited  # a generous bound: a poll is 0.5 s, the periodic look 15 s
