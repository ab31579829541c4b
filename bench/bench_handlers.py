"""The benchmarks' handler: it returns the moment it started, so a run's start is the handler's own.

``JobRun.started_at`` is when the runner claimed the slot; for a tick's batch that is one instant
before the handlers start side by side. ``bench_stamp`` returns ``time.time()`` as its first act,
the same thing the stock peers' job functions record. Loaded by every process a benchmark starts
(``TASKHUB_HANDLER_MODULES``, see ``common.process_env``) and by the benchmark itself.
"""

import time

from tasks_app import handler


@handler(name="bench_stamp")
async def bench_stamp(x: int = 0, y: int = 0) -> float:
    return time.time()
