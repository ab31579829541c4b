"""Shared plumbing for the benchmarks: arguments, databases, processes, /proc, tables.

What it is: the pieces every ``bench/*.py`` script needs to run taskhub and its stock
peers side by side on this machine —

- ``parse_args``: ``--quick`` and ``--keep-logs``; a bad argument is one line on stderr, exit 2.
- ``Bench``: one run. It takes a machine-wide lock (the benchmarks share Redis DBs 12-13;
  it waits at most ``BENCH_LOCK_WAIT`` seconds for another run to end), creates Postgres
  databases named ``taskhub_bench_*`` from a migrated template, flushes
  the Redis DBs, starts Celery workers and beats as subprocesses (each in its own session,
  logging to a temporary directory) and stops each by its PID when the run ends.
- ``setup_django``: this process as a Django client of the taskhub database, with the peer
  database as alias ``peer``; ``with peer():`` routes every ORM call to it (signals included,
  so django-celery-beat's change marker lands where the stock beat reads it).
- ``start_sides`` and ``peer_stamps`` for the scripts that run both beats at once; the
  ``/proc`` readers and ``table`` live in ``figures.py`` and are re-exported here.

What it is not: a harness for timed asserts. Scripts print figures; tests only check that
they run.
"""

import argparse
import contextlib
import contextvars
import datetime as dt
import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.figures import (  # noqa: F401  (re-exported: the scripts use common.*)
    cpu_seconds,
    fmt,
    lateness_ms,
    machine_note,
    peak_rss_mb,
    percentile,
    ratio,
    rss_mb,
    table,
)

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
PG_SERVER = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
REDIS_TASKHUB = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
REDIS_PEER = os.environ.get("BENCH_PEER_REDIS_URL", "redis://127.0.0.1:6379/13")


def migrations_digest(root: Path = ROOT) -> str:
    """A short digest of this tree's own migrations: a branch with other migrations uses other templates.

    A template migrated by one branch and then used by another (they share this server) would give
    the second branch's runs a schema it does not have, with other columns, constraints and indexes.
    """
    digest = hashlib.sha1()
    for path in sorted((root / "tasks_app" / "migrations").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:10]


TEMPLATE_DB = f"taskhub_bench_template_{migrations_digest()}"
LOCK_PATH = Path(tempfile.gettempdir()) / "taskhub-bench.lock"
LOCK_WAIT = float(os.environ.get("BENCH_LOCK_WAIT", "600"))
# Variables of ours a subprocess must not inherit unless we set them.
OURS = (
    "DEBUG",
    "SECRET_KEY",
    "DATABASE_URL",
    "TASKHUB_",
    "CELERY_",
    "REDIS_URL",
    "DJANGO_SETTINGS_MODULE",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "SECURE_",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
)


class BenchError(Exception):
    """A benchmark cannot run or complete; str(exc) is one line for a person."""


# -- arguments ---------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def parse_args(prog: str, description: str, argv=None, options=None) -> argparse.Namespace:
    """The common arguments, and the script's own that ``options(parser)`` adds."""
    parser = _Parser(prog=prog, description=description)
    parser.add_argument("--quick", action="store_true", help="a small version (seconds, not minutes)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs and print where")
    if options is not None:
        options(parser)
    return parser.parse_args(argv)


def jobs_option(default: int = 10_000):
    """``--jobs N`` for the scale benchmarks (``--quick`` uses its own small count)."""

    def add(parser) -> None:
        parser.add_argument("--jobs", type=int, default=default, help="how many jobs (default %(default)s)")

    return add


def idle_counts(jobs: int) -> list[int]:
    """The job counts a scale benchmark measures idle CPU at, to show it flat: N/100, N/10 and N."""
    return sorted({n for n in (jobs // 100, jobs // 10, jobs) if n >= 50} | {jobs})


def main(run, prog: str, description: str, options=None) -> None:
    """Parse arguments, run ``run(args)``, turn a BenchError into one line and exit status 1."""
    args = parse_args(prog, description, options=options)
    try:
        run(args)
    except BenchError as exc:
        sys.stderr.write(f"{prog}: {exc}\n")
        sys.exit(1)


# -- environment -------------------------------------------------------------------------------
def database_url(name: str) -> str:
    return f"{PG_SERVER}/{name}"


HANDLER_MODULES = "tasks_app.handlers.bundled,bench.bench_handlers"  # bench_stamp: a run's own start time


def process_env(database: str, broker: str, **overrides: str) -> dict[str, str]:
    """The environment of a taskhub process on ``database`` and ``broker`` (ours only, no .env)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(OURS)}
    env.update(
        SECRET_KEY="bench-only-not-a-secret",
        DATABASE_URL=database_url(database),
        CELERY_BROKER_URL=broker,
        REDIS_URL=broker,
        TASKHUB_ENV_FILE=os.devnull,
        TASKHUB_SECRETS_FILE=os.devnull,
        DJANGO_SETTINGS_MODULE="taskhub.settings",
        TASKHUB_HANDLER_MODULES=HANDLER_MODULES,
        TASKHUB_LOG_LEVEL="INFO",
        PYTHONPATH=str(ROOT),
    )
    env.update(overrides)
    return env


def handler_stamps(runs) -> list[float]:
    """The start times (epoch seconds) ``bench_stamp`` recorded as the result of these finished runs."""
    results = runs.filter(status="succeeded").values_list("result", flat=True)
    return [r for r in results if isinstance(r, int | float) and not isinstance(r, bool)]


_side: contextvars.ContextVar[str | None] = contextvars.ContextVar("bench_side", default=None)


class SideRouter:
    """Every model to the alias chosen by ``with peer():``; Django's default otherwise."""

    def db_for_read(self, model, **hints):
        return _side.get()

    db_for_write = db_for_read

    def allow_relation(self, obj1, obj2, **hints):
        return True


@contextlib.contextmanager
def peer():
    token = _side.set("peer")
    try:
        yield
    finally:
        _side.reset(token)


def setup_django(database: str, peer_database: str | None = None, broker: str = REDIS_TASKHUB) -> None:
    """Make this process a Django client of ``database`` (and ``peer_database`` as alias ``peer``)."""
    os.environ.update(
        {
            k: v
            for k, v in process_env(database, broker, TASKHUB_LOG_LEVEL="WARNING").items()
            if k.startswith(OURS) or k.startswith("TASKHUB_")
        }
    )
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    if peer_database:
        os.environ["BENCH_PEER_DATABASE_URL"] = database_url(peer_database)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()


# -- services and databases --------------------------------------------------------------------
def _admin_connection():
    import psycopg

    try:
        return psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        raise BenchError(f"Postgres is not reachable at {PG_SERVER}: {str(exc).strip().splitlines()[0]}") from None


def check_redis(*urls: str) -> None:
    import redis

    for url in urls:
        try:
            redis.Redis.from_url(url, socket_connect_timeout=2).ping()
        except redis.RedisError as exc:
            raise BenchError(f"Redis is not reachable at {url}: {exc}") from None


def _drop(conn, name: str) -> None:
    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _migrate(name: str, log_dir: Path) -> None:
    env = process_env(name, REDIS_TASKHUB, TASKHUB_LOG_LEVEL="WARNING")
    done = subprocess.run(
        [PYTHON, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    if done.returncode:
        (log_dir / f"migrate-{name}.log").write_text(done.stdout + done.stderr)
        raise BenchError(f"migrate into {name} failed (exit {done.returncode}); see {log_dir}")


def create_databases(
    names: list[str], log_dir: Path, prefix: str = "taskhub_bench", template: str = TEMPLATE_DB
) -> None:
    """Fresh, migrated ``names`` (copies of ``template``, migrated once per run); all start with ``prefix``."""
    for name in (*names, template):
        if not name.startswith(prefix):
            raise BenchError(f"refusing to touch database {name!r}: these benchmarks' databases start with {prefix}")
    try:
        _migrated_template(template, log_dir)
    except BenchError:  # a template migrated by another branch's migrations: start it afresh, once
        with _admin_connection() as conn:
            _drop(conn, template)
        _migrated_template(template, log_dir)
    with _admin_connection() as conn:
        for name in names:
            _drop(conn, name)
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')


def _migrated_template(template: str, log_dir: Path) -> None:
    with _admin_connection() as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [template]).fetchone():
            conn.execute(f'CREATE DATABASE "{template}"')
    _migrate(template, log_dir)  # a no-op when already up to date; picks up new migrations


def drop_databases(names: list[str], prefix: str = "taskhub_bench") -> None:
    with _admin_connection() as conn:
        for name in names:
            if name.startswith(prefix):
                _drop(conn, name)


def flush_redis(*urls: str) -> None:
    import redis

    for url in urls:
        redis.Redis.from_url(url).flushdb()


def broker_backlog(client, queue: str = "default", unacked_within: float | None = None) -> int:
    """Messages of ``queue`` waiting or delivered but not yet acknowledged (kombu's Redis layout).

    With ``unacked_within``, only messages delivered in the last that many seconds count as
    unacknowledged: a live worker acknowledges a message when its run ends, while one a killed
    worker held stays in ``unacked`` until the visibility timeout (hours) and never drains.
    """
    waiting = 0
    for key in client.scan_iter(match=f"{queue}*", count=1000):
        if client.type(key) == b"list":
            waiting += client.llen(key)
    if unacked_within is None:
        return waiting + client.hlen("unacked")
    return waiting + client.zcount("unacked_index", time.time() - unacked_within, "+inf")


# -- processes ---------------------------------------------------------------------------------
class Bench:
    """One benchmark run: the lock, its databases, its processes, its log directory.

    A subclass with other services or databases overrides ``prepare`` and ``clean_up``
    (and ``lock_wait`` / ``lock_reason`` for how long it waits for the lock and why).
    """

    lock_wait = LOCK_WAIT
    lock_reason = " (they share Redis DBs 12-13)"

    def __init__(self, name: str, databases: list[str], keep_logs: bool = False):
        self.name = name
        self.databases = databases
        self.keep_logs = keep_logs
        self.log_dir = Path(tempfile.mkdtemp(prefix=f"taskhub-bench-{name}-"))
        self.procs: list[subprocess.Popen] = []
        self._lock = None

    def __enter__(self) -> "Bench":
        self._lock = open(LOCK_PATH, "a+")
        try:
            _wait_for_lock(self._lock, self.lock_wait, self.lock_reason)
        except BaseException:
            self.log_dir.rmdir()
            raise
        try:
            self.prepare()
        except BaseException:
            self._unlock()
            if not any(self.log_dir.iterdir()):  # a failed migrate left its output there
                self.log_dir.rmdir()
            raise
        signal.signal(signal.SIGTERM, _raise_interrupt)
        return self

    def __exit__(self, *exc_info):
        try:
            self.stop_all()
            _close_django_connections()
            self.clean_up()
        finally:
            self._unlock()
        sys.stdout.flush()
        if self.keep_logs or exc_info[0] is not None:
            sys.stderr.write(f"logs: {self.log_dir}\n")
        else:
            _remove_logs(self.log_dir)

    def prepare(self) -> None:
        """Before the run, with the lock held: the services checked, the databases fresh."""
        check_redis(REDIS_TASKHUB, REDIS_PEER)
        create_databases(self.databases, self.log_dir)
        flush_redis(REDIS_TASKHUB, REDIS_PEER)

    def clean_up(self) -> None:
        """After the run, its processes stopped: what ``prepare`` made, gone."""
        drop_databases(self.databases)
        flush_redis(REDIS_TASKHUB, REDIS_PEER)

    def _unlock(self) -> None:
        fcntl.flock(self._lock, fcntl.LOCK_UN)
        self._lock.close()

    def start(self, label: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.log_dir / f"{label}.log", "w")
        proc = subprocess.Popen(
            [PYTHON, *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        proc.label, proc.log_path, proc.started = label, self.log_dir / f"{label}.log", time.time()
        self.procs.append(proc)
        return proc

    def worker(self, label: str, database: str, broker: str, *extra: str, **env) -> subprocess.Popen:
        """A worker as deployed: prefork, concurrency 2, prefetch 1, acks_late (from settings)."""
        args = [
            "-m",
            "celery",
            "-A",
            "taskhub",
            "worker",
            "--loglevel",
            "INFO",
            "-P",
            "prefork",
            "-c",
            "2",
            "--prefetch-multiplier",
            "1",
            "--without-mingle",
            "--without-gossip",
            "-n",
            f"{label}@%h",
            *extra,
        ]
        return self.start(label, args, process_env(database, broker, **env))

    def beat(self, label: str, database: str, broker: str, *extra: str, **env) -> subprocess.Popen:
        args = [
            "-m",
            "celery",
            "-A",
            "taskhub",
            "beat",
            "--loglevel",
            "INFO",
            "--schedule",
            str(self.log_dir / f"{label}-schedule"),
            *extra,
        ]
        return self.start(label, args, process_env(database, broker, **env))

    def stop(self, proc: subprocess.Popen) -> None:
        proc.stopped = True
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # its own session: the worker's pool goes with it
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            self.stop(proc)

    def wait_for_line(self, proc: subprocess.Popen, text: str, timeout: float, after: int = 0) -> float:
        """Wait until ``text`` appears in ``proc``'s log (from byte ``after``); the time.time() it was seen."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in log_text(proc, after):
                return time.time()
            if proc.poll() is not None:
                raise BenchError(f"{proc.label} exited with {proc.returncode}; see {proc.log_path}")
            time.sleep(0.02)
        raise BenchError(f"{proc.label} did not log {text!r} within {timeout:g} s; see {proc.log_path}")

    def check_alive(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None and not getattr(proc, "stopped", False):
                raise BenchError(f"{proc.label} exited early with {proc.returncode}; see {proc.log_path}")


def _wait_for_lock(handle, wait: float = LOCK_WAIT, reason: str = "") -> None:
    """Take the machine-wide benchmark lock, waiting (at most ``wait`` s) while another benchmark holds it."""
    deadline = time.monotonic() + wait
    told = False
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                handle.close()
                raise BenchError(
                    f"another benchmark held {LOCK_PATH} for {wait:g} s{reason}; "
                    "run them one at a time (or set BENCH_LOCK_WAIT)"
                ) from None
            if not told:
                sys.stderr.write(f"waiting for another benchmark to release {LOCK_PATH}\n")
                told = True
            time.sleep(0.5)


def _remove_logs(log_dir: Path) -> None:
    for path in log_dir.iterdir():
        path.unlink()
    log_dir.rmdir()


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _close_django_connections() -> None:
    if "django" in sys.modules:
        from django.db import connections

        connections.close_all()


def log_text(proc: subprocess.Popen, after: int = 0) -> str:
    with open(proc.log_path, "rb") as handle:
        handle.seek(after)
        return handle.read().decode(errors="replace")


def log_records(proc: subprocess.Popen, text: str):
    """The process's JSON log records whose line holds ``text``."""
    for line in log_text(proc).splitlines():
        if line.startswith("{") and text in line:
            yield json.loads(line)


def record_time(record: dict) -> float:
    """A JSON log record's time, in epoch seconds."""
    return dt.datetime.fromisoformat(record["time"]).timestamp()


def log_size(proc: subprocess.Popen) -> int:
    return os.path.getsize(proc.log_path)


def wait_until(predicate, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


# -- both sides at once ------------------------------------------------------------------------
STOCK_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"


def start_sides(bench: Bench, database: str, peer_database: str, timeout: float = 90) -> dict:
    """taskhub's worker and beat, and the stock beat with a worker for the peer task, each on its own
    database and Redis DB; returns the processes once all of them are ready."""
    procs = {
        "taskhub_worker": bench.worker("taskhub-worker", database, REDIS_TASKHUB),
        "peer_worker": bench.worker("peer-worker", peer_database, REDIS_PEER, "-I", "bench.peer_tasks"),
        "taskhub_beat": bench.beat("taskhub-beat", database, REDIS_TASKHUB),
        "peer_beat": bench.beat("stock-beat", peer_database, REDIS_PEER, "-S", STOCK_SCHEDULER),
    }
    for key, text in [
        ("taskhub_worker", "worker ready"),
        ("peer_worker", "worker ready"),
        ("taskhub_beat", "beat loaded jobs"),
        ("peer_beat", "beat: Starting"),
    ]:
        bench.wait_for_line(procs[key], text, timeout)
    return procs


def peer_stamps() -> list[dict]:
    """What ``bench.peer.stamp`` recorded in the peer database: ``{"tag", "started"}`` per run."""
    import json

    from django_celery_results.models import TaskResult

    with peer():
        results = TaskResult.objects.filter(task_name="bench.peer.stamp", status="SUCCESS")
        return [json.loads(r) for r in results.values_list("result", flat=True)]
