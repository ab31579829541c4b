"""Whether beat may send to the broker now: sending pauses at a failed send and resumes when a probe gets through.

Beat owns one ``BrokerWatch``. A send that fails with a broker error calls ``lost(exc)``
(one warning per outage); while ``down_since`` is set beat sends nothing and calls
``back()`` once per ``retry_every`` seconds, a single connection attempt. ``paused`` is the
reason beat's heartbeat carries to ``/healthz``. What it is not: no retries of its own
(the missed slots go through the misfire policy when beat resumes) and no sending.
"""

import datetime as dt
import logging
from functools import cached_property

from django.utils import timezone
from kombu.exceptions import OperationalError

log = logging.getLogger("tasks_app.beat")


class BrokerWatch:
    retry_every = 1.0

    def __init__(self, app):
        self.app = app
        self.down_since: dt.datetime | None = None
        self.error = ""

    @cached_property
    def errors(self) -> tuple[type[BaseException], ...]:
        """What a send raises when the broker is away (kombu's own, and the transport's)."""
        return (OperationalError, ConnectionError, *self.app.connection_for_write().connection_errors)

    @property
    def paused(self) -> str:
        if self.down_since is None:
            return ""
        return f"broker unreachable since {self.down_since.isoformat(timespec='seconds')}: {self.error}"

    def lost(self, exc: BaseException) -> None:
        if self.down_since is None:
            self.down_since, self.error = timezone.now(), " ".join(str(exc).split())[:200]
            log.warning(
                "broker unreachable; beat pauses sending until it is back",
                extra={"engine": "celery", "error": self.error},
            )

    def back(self) -> bool:
        """One connection attempt; True (and a log line) when the broker answers again."""
        try:
            with self.app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=0)
        except self.errors:
            return False
        seconds = (timezone.now() - self.down_since).total_seconds()
        log.info("broker is back; beat resumes sending", extra={"engine": "celery", "seconds_down": round(seconds, 1)})
        self.down_since, self.error = None, ""
        return True
