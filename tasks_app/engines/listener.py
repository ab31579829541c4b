"""Hearing about changes: Postgres LISTEN on a dedicated connection.

``ChangeListener.open()`` returns a listener on Postgres and ``None`` elsewhere (callers
then poll the change marker). ``wait(timeout)`` blocks until something arrives or the
timeout passes and returns ``Notices``: the changed job ids (``jobs`` is ``None`` when the
listener cannot know which — a reconnect after a lost connection, a payload cut short —
and the caller must look at everything changed since its last look) and the ids of runs
queued for immediate delivery (``taskhub_runs``). It sleeps in ``select()`` on the connection's
socket, so a listener with nothing to hear costs nothing (psycopg's ``notifies()`` wakes
every 0.1 s while it waits).
"""

import datetime as dt
import json
import logging
import select
from dataclasses import dataclass, field

import psycopg
from django.db import connection, connections
from django.utils import timezone

from tasks_app.models import Job, changes
from tasks_app.models.changes import CHANNEL as JOBS_CHANNEL

log = logging.getLogger("tasks_app.listener")
RUNS_CHANNEL = "taskhub_runs"


@dataclass
class Notices:
    jobs: set[int] | None = field(default_factory=set)
    runs: set[int] = field(default_factory=set)
    reconnected: bool = False  # the LISTEN connection was lost: notifications may have been missed
    runs_queued: bool = False  # polling: runs were requested since the last look (a listener names them in `runs`)


class ChangeListener:
    def __init__(self, conn: psycopg.Connection, using: str = "default"):
        self.conn = conn
        self.using = using

    @classmethod
    def open(cls, using: str = "default") -> "ChangeListener | None":
        if connections[using].vendor != "postgresql":
            return None
        try:
            return cls(cls._connect(using), using)
        except psycopg.Error as exc:
            log.warning("cannot LISTEN; polling the change marker", extra={"error": str(exc)})
            return None

    @staticmethod
    def _connect(using: str) -> psycopg.Connection:
        params = connections[using].get_connection_params()
        for key in ("cursor_factory", "context", "prepare_threshold", "server_side_binding"):
            params.pop(key, None)
        conn = psycopg.connect(
            **params,
            autocommit=True,
            application_name="taskhub-listener",
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=3,
        )
        conn.execute(f"LISTEN {JOBS_CHANNEL}")
        conn.execute(f"LISTEN {RUNS_CHANNEL}")
        return conn

    def wait(self, timeout: float) -> Notices:
        notices = Notices()
        try:
            # Sleep in select() on the socket: psycopg's own notifies() wakes every 0.1 s while it waits.
            if self._readable(timeout):
                # psycopg waits forever on a timeout of 0: never pass one.
                for note in self.conn.notifies(timeout=0.001):  # what has arrived, without waiting for more
                    self._add(notices, note)
        except (psycopg.Error, OSError, ValueError):  # ValueError: select() on a closed socket (fd -1)
            self._reconnect()
            notices.jobs, notices.reconnected = None, True
        return notices

    def _readable(self, timeout: float) -> bool:
        if self.conn.closed:
            raise psycopg.OperationalError("the LISTEN connection is closed")
        return bool(select.select([self.conn.fileno()], [], [], max(timeout, 0.0))[0])

    @staticmethod
    def _add(notices: Notices, note) -> None:
        if note.channel == RUNS_CHANNEL:
            if note.payload.isdigit():
                notices.runs.add(int(note.payload))
            return
        try:
            ids = json.loads(note.payload)["jobs"]
        except (ValueError, KeyError, TypeError):
            ids = None
        if ids is None or len(ids) >= 500 or notices.jobs is None:  # unknown, or the payload was cut short
            notices.jobs = None
        else:
            notices.jobs |= set(ids)

    def _reconnect(self) -> None:
        self.close()
        try:
            self.conn = self._connect(self.using)
        except psycopg.Error as exc:
            log.warning("LISTEN connection lost; retrying", extra={"error": str(exc)})

    def close(self) -> None:
        try:
            self.conn.close()
        except psycopg.Error:
            pass


class ChangeWatcher:
    """Which jobs changed since the last look: from LISTEN when it can, else from the change marker.

    Without a listener (SQLite, or a lost connection) it polls the marker's rows in one query;
    when jobs changed but the ids are unknown, it takes the jobs updated since its last look
    plus the ids ``known()`` returns whose rows are gone. On SQLite the marker also says that runs
    were requested (``runs_queued``), so they start within a poll. ``sleep`` is how the caller
    waits between polls.
    """

    def __init__(self, sleep):
        self._sleep = sleep
        self.listener = ChangeListener.open()
        self.version, self.runs_version = changes.versions()
        self.seen_update = timezone.now() - dt.timedelta(seconds=1)

    @property
    def hears_run_requests(self) -> bool:
        """Whether run requests reach it at once: by NOTIFY, or by the marker where that is how they
        are told (``APSchedulerEngine.deliver``). Else only a periodic look finds them."""
        return self.listener is not None or connection.vendor != "postgresql"

    def wait(self, timeout: float, known) -> Notices:
        """``known``: a callable giving the job ids the caller holds, asked only when needed."""
        notices = self.listener.wait(timeout) if self.listener is not None else self._poll(timeout)
        if notices.jobs is None:
            notices.jobs = self._changed_since_last_look(set(known()))
        return notices

    def _poll(self, timeout: float) -> Notices:
        self._sleep(timeout)
        (version, runs_version), before = changes.versions(), (self.version, self.runs_version)
        self.version, self.runs_version = version, runs_version
        return Notices(jobs=set() if version == before[0] else None, runs_queued=runs_version != before[1])

    def _changed_since_last_look(self, known: set[int]) -> set[int]:
        changed = set(Job.objects.filter(updated_at__gte=self.seen_update).values_list("pk", flat=True))
        changed |= known - set(Job.objects.filter(pk__in=known).values_list("pk", flat=True))
        self.seen_update = timezone.now() - dt.timedelta(seconds=1)
        return changed

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()
