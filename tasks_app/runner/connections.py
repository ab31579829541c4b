"""The runner's database connection before a run: Django's checks, without a round trip where the socket answers.

``close_old_connections`` drops a connection that failed or outlived ``CONN_MAX_AGE``, and with
``CONN_HEALTH_CHECKS`` Django then sends ``SELECT 1`` before the next statement. That is one
round trip per run, a third of a scheduled run's statements. A Postgres connection between
statements has nothing to read: a backend that was ended since (a restart, ``pg_terminate_backend``,
``idle_session_timeout``) sends its error and closes its socket, which makes the socket readable.
So a connection whose socket is quiet counts as checked, and only one with something to read
gets Django's ``SELECT 1`` (which closes it when it fails, so the claim opens a fresh one).

What it is not: a guard against a server that went silent without closing the socket (a cut
network); there the claim fails as it would after a passed ``SELECT 1``.
"""

import select

from django.db import close_old_connections, connection


def ready_connection() -> None:
    """Before a run: close a failed or aged connection, and check the one kept (cheaply where it can)."""
    close_old_connections()
    if connection.vendor == "postgresql" and connection.health_check_enabled and _quiet(connection.connection):
        connection.health_check_done = True  # nothing arrived since its last statement: still open


def _quiet(raw) -> bool:
    """Whether the open psycopg connection ``raw`` has nothing to read (a closed one's socket does)."""
    if raw is None or raw.closed or raw.broken:
        return False
    try:
        readable, _, _ = select.select([raw.fileno()], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable
