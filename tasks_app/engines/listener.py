"""Hearing about job changes: Postgres LISTEN on a dedicated connection.

``ChangeListener.open()`` returns a listener on Postgres and ``None`` elsewhere (callers
then poll the change marker). ``wait(timeout)`` blocks until a change or the timeout and
returns the changed job ids (an empty set when nothing changed), or ``None`` when the
listener cannot know what changed (a reconnect after a lost connection, a payload cut
short) and the caller must look at everything that changed since its last look.
"""

import json
import logging

import psycopg
from django.db import connections

from tasks_app.changes import CHANNEL

log = logging.getLogger("tasks_app.listener")


class ChangeListener:
    def __init__(self, conn: psycopg.Connection):
        self.conn = conn

    @classmethod
    def open(cls, using: str = "default") -> "ChangeListener | None":
        if connections[using].vendor != "postgresql":
            return None
        try:
            return cls(cls._connect(using))
        except psycopg.Error as exc:
            log.warning("cannot LISTEN; polling the change marker", extra={"error": str(exc)})
            return None

    @staticmethod
    def _connect(using: str) -> psycopg.Connection:
        params = connections[using].get_connection_params()
        for key in ("cursor_factory", "context", "prepare_threshold", "server_side_binding"):
            params.pop(key, None)
        conn = psycopg.connect(**params, autocommit=True, application_name="taskhub-listener",
                               keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=3)
        conn.execute(f"LISTEN {CHANNEL}")
        return conn

    def wait(self, timeout: float) -> set[int] | None:
        ids: set[int] = set()
        try:
            # psycopg waits forever on a timeout of 0: never pass one.
            for note in self.conn.notifies(timeout=max(timeout, 0.001), stop_after=1):
                ids |= self._ids(note.payload)
            for note in self.conn.notifies(timeout=0.001):  # drain what else has arrived
                ids |= self._ids(note.payload)
        except (psycopg.Error, _Unknown):
            self._reconnect()
            return None
        return ids

    def _ids(self, payload: str) -> set[int]:
        try:
            ids = json.loads(payload)["jobs"]
        except (ValueError, KeyError, TypeError):
            raise _Unknown from None
        if len(ids) >= 500:
            raise _Unknown  # the payload was cut short
        return set(ids)

    def _reconnect(self) -> None:
        try:
            self.conn.close()
        except psycopg.Error:
            pass
        try:
            self.conn = self._connect("default")
        except psycopg.Error as exc:
            log.warning("LISTEN connection lost; retrying", extra={"error": str(exc)})

    def close(self) -> None:
        try:
            self.conn.close()
        except psycopg.Error:
            pass


class _Unknown(Exception):
    pass
