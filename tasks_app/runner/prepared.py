"""A cursor for the runner's two statements per run: prepared on the server once per connection.

Django's psycopg cursors bind parameters on the client and send each statement as text, so
Postgres parses, analyses and plans the claim (``slot_inserts.py``) on every run — most of the
backend's work per run. These two statements (the claim and the outcome's ``UPDATE``,
``row_updates.py``) go through a psycopg cursor that binds on the server and prepares: the
first execution on a connection parses and names the statement, later ones send only its name
and the values. Postgres plans a prepared statement for its values its first five executions
and then keeps a generic plan if that costs no more than theirs (``plan_cache_mode``).

The cursor is wrapped like Django's own (``connection.make_cursor``, or the debug wrapper when
queries are logged): counted, logged and its errors translated as any ORM statement. The debug
wrapper logs the statement with its values bound as Django's server-binding mode does
(``ops.compose_sql``): a prepared execution leaves psycopg no text of its own to report.

A generic plan is made once, from the table's size at that moment, and kept until Postgres
invalidates it (an ``ANALYZE``, autovacuum's included). Made on a young table — a new install,
the first runs after a migration — it scans the whole table where an index would serve, and each
run costs more than the one before until autovacuum next analyzes the table (measured here: the
claim 0.6 ms at 1,000 runs of a job, 2.8 ms at 4,000, with its three sequential scans). So a
connection makes its statements again every ``REPREPARE_AFTER`` executions (``DEALLOCATE ALL``,
one statement, after which psycopg prepares them anew): a plan never outlives the table it was
made for by more than that.

Where prepared statements cannot work — PgBouncer in transaction mode before 1.22 (the first to
handle ``DEALLOCATE ALL`` with its prepared statements), or without
``max_prepared_statements`` — ``TASKHUB["PREPARED_STATEMENTS"] = False`` sends them as text again.

What it is not: preparation for anything else. Django keeps ``prepare_threshold`` at ``None``
for its own cursors (client-side binding never prepares); this sets the connection's threshold
so that only this cursor's ``prepare=True`` takes effect.
"""

import weakref

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper

from tasks_app import conf

NEVER_BY_COUNT = 2**31 - 1  # a threshold no statement reaches: only an explicit prepare=True prepares
REPREPARE_AFTER = 500  # executions on one connection before its statements (and their plans) are made again

_uses: "weakref.WeakKeyDictionary[psycopg.Connection, int]" = weakref.WeakKeyDictionary()


class _PreparingCursor(psycopg.Cursor):
    """psycopg's server-binding cursor, preparing every statement it executes."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=True, binary=binary)


class _DebugWrapper(CursorDebugWrapper):
    """Django's debug wrapper, logging the statement composed with its values."""

    def execute(self, sql, params=None):
        try:
            logged = self.db.ops.compose_sql(sql, params)
        except psycopg.DataError:  # a value psycopg cannot render: the statement as written
            logged = sql
        with self.debug_sql(logged):
            return CursorWrapper.execute(self, sql, params)


def cursor():
    """A cursor for a hot statement: prepared on this connection, wrapped as Django wraps its own."""
    connection = connections[DEFAULT_DB_ALIAS]  # the wrapper itself, not the proxy (a lookup per attribute)
    if connection.vendor != "postgresql" or not conf.get("PREPARED_STATEMENTS"):
        return connection.cursor()
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None:
        raw.prepare_threshold = NEVER_BY_COUNT
    connection.validate_thread_sharing()
    with connection.wrap_database_errors:
        uses = _uses.get(raw, 0) + 1
        if uses > REPREPARE_AFTER:
            raw.execute("DEALLOCATE ALL")  # psycopg sees the command and forgets its names too
            uses = 1
        _uses[raw] = uses
        cur = _PreparingCursor(raw)
    return _DebugWrapper(cur, connection) if connection.queries_logged else connection.make_cursor(cur)
