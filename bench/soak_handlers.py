"""The soak's handler: each successful execution appends one line to the effects file.

``soak_effect(seconds, fail_percent)`` sleeps ``seconds``, fails on a share of attempts
(decided by a hash of job, slot and attempt, so a re-run of the same attempt decides the
same), and otherwise records its effect: one JSON line ``{"job", "slot", "attempt",
"engine", "pid", "at"}`` appended with a single ``write`` to ``$SOAK_EFFECTS_FILE``. The
file lives outside Postgres and Redis, so it survives every fault the soak injects; two
lines for one ``(job, slot)`` are a duplicate effect.

Workers and schedulers load it through ``TASKHUB_HANDLER_MODULES=...,bench.soak_handlers``.
"""

import hashlib
import json
import os
import time

import anyio

from tasks_app import RunContext, handler


@handler(name="soak_effect")
async def soak_effect(seconds: float = 0.0, fail_percent: int = 0, context: RunContext | None = None) -> int:
    await anyio.sleep(seconds)
    if fail_percent and _roll(context) < fail_percent:
        raise RuntimeError(f"soak: planned failure of attempt {context.attempt}")
    record(context)
    return context.attempt


def _roll(context) -> int:
    key = f"{context.job_name}|{context.scheduled_for.isoformat()}|{context.attempt}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "big") % 100


def record(context) -> None:
    line = (
        json.dumps(
            {
                "job": context.job_name,
                "slot": context.scheduled_for.isoformat(),
                "attempt": context.attempt,
                "engine": context.engine,
                "pid": os.getpid(),
                "at": time.time(),
            }
        )
        + "\n"
    )
    fd = os.open(os.environ["SOAK_EFFECTS_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())  # one write of a short line to an O_APPEND file: never interleaved
    finally:
        os.close(fd)
