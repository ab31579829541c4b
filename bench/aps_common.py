"""Plumbing of the APScheduler benchmarks (``bench/aps_*.py``): databases, processes, logs.

What it is: what those scripts need beyond ``bench/common.py`` to run taskhub's
``manage.py runapscheduler`` and the stock peer (``bench/aps_peer.py``) on this machine —

- ``ApsBench``: one run, like ``common.Bench`` but without Redis (neither scheduler uses
  it) and on its own Postgres databases, named ``taskhub_apsbench_*`` and copied from a
  template migrated with ``manage.py migrate``. It waits (up to ``BENCH_LOCK_WAIT`` s,
  default 120) for the machine-wide benchmark lock, so two benchmarks never share the CPUs.
- ``LogWatch``: waits for a line in a process's log, reading only what is new (a scheduler
  adding 10,000 jobs writes megabytes; re-reading them every 20 ms would steal a CPU).

The peer itself, and reading and editing what it stores, are in ``bench/aps_peer.py``.

What it is not: a harness for timed asserts. The scripts print figures.
"""

import datetime as dt
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench import common

PREFIX = "taskhub_apsbench"
TEMPLATE_DB = f"{PREFIX}_template"
LOCK_WAIT = float(os.environ.get("BENCH_LOCK_WAIT", "120"))
LEADER_LINE = "apscheduler is leader"
PEER_READY_LINE = "Scheduler started"


class ApsBench(common.Bench):
    """One run: the benchmark lock, its ``taskhub_apsbench_*`` databases, its processes and logs."""

    def __enter__(self) -> "ApsBench":
        self._lock = open(common.LOCK_PATH, "a+")
        _wait_for_lock(self._lock)
        try:
            create_databases(self.databases, self.log_dir)
        except BaseException:
            self._unlock()
            raise
        signal.signal(signal.SIGTERM, _raise_interrupt)
        return self

    def __exit__(self, *exc_info):
        try:
            self.stop_all()
            _close_django_connections()
            drop_databases(self.databases)
        finally:
            self._unlock()
        sys.stdout.flush()
        if self.keep_logs or exc_info[0] is not None:
            sys.stderr.write(f"logs: {self.log_dir}\n")
        else:
            for path in self.log_dir.iterdir():
                path.unlink()
            self.log_dir.rmdir()

    def _unlock(self) -> None:
        fcntl.flock(self._lock, fcntl.LOCK_UN)
        self._lock.close()

    def runapscheduler(self, label: str, database: str) -> subprocess.Popen:
        """taskhub's APScheduler engine process, as deployed (``manage.py runapscheduler``)."""
        return self.start(label, ["manage.py", "runapscheduler"], common.process_env(database, common.REDIS_TASKHUB))

    def peer(self, label: str, database: str, stamps: Path, *args: str) -> subprocess.Popen:
        """The stock django-apscheduler scheduler (``bench/aps_peer.py``) on ``database``."""
        env = common.process_env(database, common.REDIS_PEER, BENCH_APS_STAMPS=str(stamps))
        return self.start(label, ["bench/aps_peer.py", *args], env)


def _wait_for_lock(handle) -> None:
    deadline = time.monotonic() + LOCK_WAIT
    told = False
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                handle.close()
                raise common.BenchError(f"another benchmark held {common.LOCK_PATH} for {LOCK_WAIT:g} s; "
                                        "run them one at a time (or set BENCH_LOCK_WAIT)") from None
            if not told:
                sys.stderr.write(f"waiting for another benchmark to release {common.LOCK_PATH}\n")
                told = True
            time.sleep(0.5)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _close_django_connections() -> None:
    if "django" in sys.modules:
        from django.db import connections

        connections.close_all()


# -- databases ---------------------------------------------------------------------------------
def _admin_connection():
    import psycopg

    try:
        return psycopg.connect(f"{common.PG_SERVER}/postgres", autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        message = str(exc).strip().splitlines()[0]
        raise common.BenchError(f"Postgres is not reachable at {common.PG_SERVER}: {message}") from None


def _check_name(name: str) -> None:
    if not name.startswith(PREFIX):
        raise common.BenchError(f"refusing to touch database {name!r}: these benchmarks' databases start with {PREFIX}")


def create_databases(names: list[str], log_dir: Path) -> None:
    """Fresh, migrated ``names``: copies of a template that ``manage.py migrate`` keeps current."""
    for name in (*names, TEMPLATE_DB):
        _check_name(name)
    with _admin_connection() as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [TEMPLATE_DB]).fetchone():
            conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
    env = common.process_env(TEMPLATE_DB, common.REDIS_TASKHUB, TASKHUB_LOG_LEVEL="WARNING")
    done = subprocess.run([common.PYTHON, "manage.py", "migrate", "--noinput"], cwd=common.ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    if done.returncode:
        (log_dir / "migrate.log").write_text(done.stdout + done.stderr)
        raise common.BenchError(f"migrate into {TEMPLATE_DB} failed (exit {done.returncode}); see {log_dir}")
    with _admin_connection() as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')


def drop_databases(names: list[str]) -> None:
    with _admin_connection() as conn:
        for name in names:
            _check_name(name)
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- logs --------------------------------------------------------------------------------------
class LogWatch:
    """Finds lines in a process's log, reading each byte of it once.

    Each look consumes the lines it reads up to its match (or all of them, when none
    matches), so a line is found at most once.
    """

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.offset = 0
        self.partial = b""
        self.pending: list[bytes] = []

    def poll(self, text: str) -> float | None:
        """When the next line containing ``text`` was logged (its JSON ``time``), or None."""
        with open(self.proc.log_path, "rb") as handle:
            handle.seek(self.offset)
            chunk = handle.read()
        self.offset += len(chunk)
        lines = (self.partial + chunk).split(b"\n")
        self.partial = lines.pop()
        self.pending += lines
        needle = text.encode()
        for index, line in enumerate(self.pending):
            if needle in line:
                del self.pending[:index + 1]
                return _logged_at(line)
        self.pending.clear()
        return None

    def wait_for(self, text: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while True:
            seen = self.poll(text)
            if seen is not None:
                return seen
            if self.proc.poll() is not None:
                raise common.BenchError(f"{self.proc.label} exited with {self.proc.returncode}; see {self.proc.log_path}")
            if time.monotonic() > deadline:
                raise common.BenchError(f"{self.proc.label} did not log {text!r} within {timeout:g} s; "
                                        f"see {self.proc.log_path}")
            time.sleep(0.02)


def _logged_at(line: bytes) -> float:
    """The record's own time (taskhub's JSON logs carry one); now, for any other line."""
    try:
        return dt.datetime.fromisoformat(json.loads(line)["time"]).timestamp()
    except (ValueError, KeyError, TypeError):
        return time.time()


def wait_ready(proc: subprocess.Popen, text: str, timeout: float) -> float:
    """Seconds from spawning ``proc`` to the record of its ``text`` line."""
    return LogWatch(proc).wait_for(text, timeout) - proc.started
