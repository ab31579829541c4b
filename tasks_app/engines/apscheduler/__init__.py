"""The APScheduler engine: one ``runapscheduler`` process fires and runs jobs in-process.

``engine`` is the ``APSchedulerEngine`` with the trigger and executor APScheduler calls,
``manager`` the ``SchedulerManager`` (one APScheduler per process, the add/pause/modify API),
``store_rows`` the job store's rows in bulk (what ``manager.reconcile`` reads and writes),
and ``service`` the ``runapscheduler`` process around it (leader lock, live edits,
heartbeats, drain on SIGTERM).

What it is not: it never calls a handler itself; every fire goes through the runner.

Stored rows name things here: django-apscheduler's job store keeps
``tasks_app.engines.apscheduler:fire`` as the function and pickles ``SlotTrigger`` under
this package's path, so both stay importable from here.
"""

from tasks_app.engines.apscheduler.engine import APSchedulerEngine, SlotTrigger, fire

__all__ = ["APSchedulerEngine", "SlotTrigger", "fire"]
