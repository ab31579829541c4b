"""One run's row written by its id and its claim: the ORM's ``UPDATE``, with its text made once.

``JobRun.objects.filter(pk=…, worker=…, attempt=…).update(**values)`` builds and compiles a query
on every call, as much Python as the rest of a run's outcome. The outcome writes the same columns
run after run, so the statement's text is made once per set of columns and only the values are
converted each time, by the same ``get_db_prep_save`` the ORM's update calls (``None`` is ``NULL``,
as there). It is prepared on its connection (``prepared.py``: parsed and planned once), through a
cursor Django wraps as its own: counted, logged and its errors translated like any ORM statement.

What it is not: a general update; expressions (``F()``) and related fields are the ORM's.
"""

import functools

from django.db import DEFAULT_DB_ALIAS, connection, connections

from tasks_app.models import JobRun
from tasks_app.runner import prepared


def update_run(pk: int, where: dict, values: dict) -> int:
    """Set ``values`` on the run ``pk`` if its row still matches ``where``; the rows written (0 or 1)."""
    sql, fields, conditions = _statement(tuple(values), tuple(where))
    db = connections[DEFAULT_DB_ALIAS]  # the wrapper itself: ``connection`` is a proxy, a lookup per attribute
    params = [field.get_db_prep_save(values[field.name], db) for field in fields]
    params += [field.get_db_prep_value(value, db) for field, value in zip(conditions, [pk, *where.values()])]
    with prepared.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


@functools.cache
def _statement(names: tuple[str, ...], where: tuple[str, ...]) -> tuple[str, list, list]:
    quote = connection.ops.quote_name
    fields = [JobRun._meta.get_field(name) for name in names]
    conditions = [JobRun._meta.pk, *(JobRun._meta.get_field(name) for name in where)]
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
    matches = " AND ".join(f"{quote(field.column)} = %s" for field in conditions)
    return f"UPDATE {quote(JobRun._meta.db_table)} SET {assignments} WHERE {matches}", fields, conditions
