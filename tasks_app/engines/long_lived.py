"""What a scheduler process loaded to serve its jobs, kept out of Python's cyclic garbage collector.

A beat or ``runapscheduler`` holding 100,000 jobs keeps a few million objects for as long as it
runs. Python's collector still walks every one of them on each full (generation 2) collection:
0.09-0.14 CPU-s a pass, measured here at 100,000 jobs, holding the GIL meanwhile — one such pass in
a minute without a single job due was 0.18 CPU-s/min of "idle", and a fire due during it starts
late by as much; and a start-up at 100,000 jobs ran about 25 of them, 3 of its 21 s. So a full load
runs with the collector off, then collects once and freezes what survived (``gc.freeze``): later
collections look only at objects made since.

Only in a process that is a scheduler and nothing else (``runapscheduler``, ``celery beat``: each
calls ``dedicate()`` at its start). Anywhere else — a test run, a web process, an embedded beat —
freezing would keep whatever happened to be alive then out of every later collection.

What it is not: a memory limit. Frozen objects are still freed by reference counting when let go;
only cycles among them wait for the process's end (a reload replaces jobs, and the next freeze
counts them again).
"""

import contextlib
import gc

_dedicated = False


def dedicate() -> None:
    """This process only schedules jobs from now on: ``loading`` may freeze what it loads."""
    global _dedicated
    _dedicated = True


@contextlib.contextmanager
def loading():
    """Around a full load, in a dedicated process: no collections meanwhile, then one, then freeze what is left."""
    if not _dedicated:
        yield
        return
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.collect()
        gc.freeze()
        if was_enabled:
            gc.enable()
