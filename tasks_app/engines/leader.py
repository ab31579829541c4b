"""One leader per engine: whoever holds the lock schedules; the others wait as standbys.

On Postgres the lock is a session advisory lock held on a dedicated connection (not
Django's, which may be closed or recycled between runs): when the leader's process dies
its connection closes and Postgres releases the lock at once, so a standby polling every
``poll`` seconds takes over within about that long. TCP keepalives bound how long a
leader cut off by the network keeps it. On SQLite (one machine) it is an exclusive
``flock`` on a file beside the database, released by the kernel when the process dies.

``LeaderLock.still_held()`` lets the leader notice that it lost the lock (Postgres
restarted, connection cut) and stop scheduling until it wins it again.
"""

import fcntl
import hashlib
import logging
import os
import threading
from pathlib import Path

import psycopg
from django.db import connections

from tasks_app import conf

log = logging.getLogger("tasks_app.engines.leader")


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``name``."""
    return int.from_bytes(hashlib.sha256(f"taskhub:{name}".encode()).digest()[:8], "big", signed=True)


class LeaderLock:
    def __init__(self, name: str, using: str = "default"):
        self.name = name
        self.using = using
        self._conn = None  # Postgres connection, or the open lock file on SQLite

    @property
    def _postgres(self) -> bool:
        return connections[self.using].vendor == "postgresql"

    def try_acquire(self) -> bool:
        try:
            return self._try_postgres() if self._postgres else self._try_file()
        except (psycopg.Error, OSError) as exc:
            log.warning("leader lock unavailable", extra={"lock": self.name, "error": str(exc)})
            self.release()
            return False

    def acquire(self, stop: threading.Event, poll: float = 1.0) -> bool:
        """Wait as a standby until the lock is ours (True) or ``stop`` is set (False)."""
        waiting_logged = False
        while not stop.is_set():
            if self.try_acquire():
                log.info("became leader", extra={"lock": self.name})
                return True
            if not waiting_logged:
                log.info("standing by: another process is leader", extra={"lock": self.name})
                waiting_logged = True
            stop.wait(poll)
        return False

    def still_held(self) -> bool:
        if self._conn is None:
            return False
        if not self._postgres:
            return True  # a flock lasts as long as the process and its open file
        try:
            self._conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            log.warning("lost the leader lock's connection", extra={"lock": self.name})
            self.release()
            return False

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()  # closing the session (or the file) releases the lock
            except (psycopg.Error, OSError):
                pass

    def _try_postgres(self) -> bool:
        if self._conn is None:
            params = connections[self.using].get_connection_params()
            for key in ("cursor_factory", "context", "prepare_threshold", "server_side_binding"):
                params.pop(key, None)
            self._conn = psycopg.connect(
                **params,
                autocommit=True,
                application_name=f"taskhub-leader-{self.name}",
                keepalives=1,
                keepalives_idle=5,
                keepalives_interval=2,
                keepalives_count=3,
            )
        got = self._conn.execute("SELECT pg_try_advisory_lock(%s)", [lock_key(self.name)]).fetchone()[0]
        return bool(got)

    def _try_file(self) -> bool:
        database = Path(connections[self.using].settings_dict["NAME"])
        path = database.with_name(f"{database.name}.{self.name}.lock")
        handle = self._conn or open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            self._conn = None
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._conn = handle
        return True


class NoLock:
    """Every process leads (``TASKHUB_LEADER_LOCK=off``): for tests of the slot claim, not for production."""

    def __init__(self, name: str):
        self.name = name

    def try_acquire(self) -> bool:
        return True

    def acquire(self, stop: threading.Event, poll: float = 1.0) -> bool:
        return not stop.is_set()

    def still_held(self) -> bool:
        return True

    def release(self) -> None:
        pass


def leader_lock(name: str):
    return LeaderLock(name) if conf.get("LEADER_LOCK") else NoLock(name)
