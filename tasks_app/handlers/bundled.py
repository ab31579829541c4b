"""The bundled handlers. Any module listed in TASKHUB_HANDLER_MODULES can hold more."""

import datetime as dt
import logging

import anyio
import httpx

from tasks_app.handlers.context import RunContext
from tasks_app.handlers.registry import handler

log = logging.getLogger("tasks_app.handlers")


@handler
async def number_sum(x: int, y: int) -> int:
    """Add two integers (the smallest useful job: shows input, result and logs)."""
    result = x + y
    log.info("number_sum", extra={"x": x, "y": y, "result": result})
    return result


@handler(timeout=600)
async def cleanup_runs(older_than_days: int = 30, batch_size: int = 1000, context: RunContext | None = None) -> dict:
    """Delete run history finished more than `older_than_days` ago, in batches."""
    from tasks_app.models.retention import (
        delete_runs_older_than,
    )  # at run time: importing handlers stays free of Django

    deleted = await anyio.to_thread.run_sync(delete_runs_older_than, older_than_days, batch_size)
    return {"deleted": deleted}


@handler(timeout=60, retries=2, retry_backoff=5)
async def http_check(
    url: str, expect_status: int = 200, timeout_seconds: float = 10.0, context: RunContext | None = None
) -> dict:
    """GET a URL and fail unless it answers with the expected status in time."""
    started = anyio.current_time()
    async with httpx.AsyncClient(timeout=timeout_seconds, follow_redirects=True) as client:
        response = await client.get(url)
    elapsed_ms = round((anyio.current_time() - started) * 1000, 1)
    if response.status_code != expect_status:
        raise RuntimeError(f"{url} answered {response.status_code}, expected {expect_status}")
    return {"status": response.status_code, "elapsed_ms": elapsed_ms, "bytes": len(response.content)}


@handler
async def sleep(seconds: float, steps: int = 10, context: RunContext | None = None) -> dict:
    """Wait `seconds`, reporting progress in `steps` (useful to try timeouts, progress and cancel)."""
    for step in range(steps):
        await anyio.sleep(seconds / steps)
        if context is not None:
            context.report_progress((step + 1) / steps, f"step {step + 1} of {steps}")
    return {"slept": seconds}


@handler
async def fail(message: str = "this handler always fails") -> None:
    """Raise an error (useful to try retries, alerts and the error view)."""
    raise RuntimeError(message)


@handler
async def echo(payload: dict | None = None, when: dt.datetime | None = None, context: RunContext | None = None) -> dict:
    """Return what it was given, with the run's context (useful to try the API and kwargs)."""
    return {
        "payload": payload,
        "when": when.isoformat() if when else None,
        "job": context.job_name if context else None,
        "attempt": context.attempt if context else None,
    }
