"""The alert courier: a thread of each engine process that looks for overdue jobs and delivers alerts.

Beat and ``runapscheduler`` each start one (leader or standby: whichever process is alive does
the work; the streaks' unique index and the outbox's row locks keep two of them to one alert and
one send). Every ``ALERT_POLL_SECONDS`` it delivers the due messages (a bounded batch) and, every
``ALERT_OVERDUE_EVERY_SECONDS``, opens and closes overdue streaks — the one look for overdue jobs:
the dashboard and ``/metrics`` read what it found and when. It runs beside the scheduling
loop, on its own database connection, so a slow SMTP server or webhook never delays a fire.
``ALERT_POLL_SECONDS = 0`` turns it off.

What it is not: it decides nothing about runs; an error in a pass is logged and the next pass
tries again.
"""

import logging
import threading
import time

from django.db import close_old_connections, connection

from tasks_app import conf
from tasks_app.alerts import outbox
from tasks_app.alerts.overdue import OverdueWatch

log = logging.getLogger("tasks_app.alerts")
SWEEP_SHARE = 20  # the overdue look waits at least 20 times as long as it took


class AlertCourier:
    def __init__(self, process: str):
        self.process = process
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.next_sweep = 0.0
        self.watch = OverdueWatch(process)

    def start(self) -> None:
        """Start the thread unless it runs already or alerts are off (cheap: the loops call it often)."""
        if (self.thread is not None and self.thread.is_alive()) or conf.get("ALERT_POLL_SECONDS") <= 0:
            return
        self.stopping.clear()
        self.thread = threading.Thread(target=self._loop, name=f"taskhub-alerts-{self.process}", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(conf.get("ALERT_TIMEOUT_SECONDS") + 5)
            self.thread = None

    def _loop(self) -> None:
        try:
            # The first pass at once: its walk over every job is start-up work, and what waits is sent.
            self.work()
            while not self.stopping.wait(conf.get("ALERT_POLL_SECONDS")):
                self.work()
        finally:
            connection.close()  # this thread's own connection

    def work(self, now=None) -> None:
        """One pass: the overdue look when due, then a batch of deliveries. Never raises.

        Its connection is kept from pass to pass, unchecked: asking Django to check it first
        (``close_old_connections`` with health checks) would cost a statement a pass and a new
        session every ``CONN_MAX_AGE``. A connection the database dropped fails the step that
        uses it, and is replaced at the next pass (``_guarded``).
        """
        if time.monotonic() >= self.next_sweep:
            started = time.monotonic()
            self._guarded(self.watch.sweep, now)
            # The first look walks every job in Python (later ones only those edited or due): when a look
            # is long, the next waits longer, so it never takes more than a twentieth of the process's time.
            spent = time.monotonic() - started
            self.next_sweep = started + max(conf.get("ALERT_OVERDUE_EVERY_SECONDS"), SWEEP_SHARE * spent)
        self._guarded(outbox.deliver_due, now)

    def _guarded(self, step, now) -> None:
        try:
            step(now)
        except Exception as exc:  # the database is away, say: the next pass tries again
            log.warning("alert pass failed", extra={"step": step.__module__, "error": str(exc)[:500]})
            close_old_connections()
