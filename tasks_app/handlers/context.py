"""What a handler that declares a ``context`` parameter receives."""

import datetime as dt
import logging
from dataclasses import dataclass, field


@dataclass
class RunContext:
    job_name: str
    run_id: int
    scheduled_for: dt.datetime
    attempt: int
    engine: str
    logger: logging.Logger | logging.LoggerAdapter = field(
        default_factory=lambda: logging.getLogger("tasks_app.handler")
    )
    progress: float | None = None
    progress_message: str = ""

    def report_progress(self, fraction: float, message: str | None = None) -> None:
        """Record how far the run is (0.0–1.0); the admin shows it while the run is running.

        Cheap to call often: the runner writes the latest value with its next heartbeat.
        """
        self.progress = min(1.0, max(0.0, float(fraction)))
        if message is not None:
            self.progress_message = str(message)[:200]
