"""Awaiting one handler call on the process loop: timeout, outcome, log context."""

import traceback
from dataclasses import dataclass
from typing import Any

import anyio

from taskhub.log import log_context
from tasks_app.models import RunStatus


@dataclass
class Outcome:
    status: str
    result: Any = None
    error: str = ""
    reason: str = ""


async def invoke(spec, kwargs: dict, context, timeout: float | None) -> Outcome:
    """Await the handler; a timeout cancels it (a cancel scope) and is an outcome, not an error."""
    extra = {"context": context} if spec.takes_context else {}
    with log_context(job=context.job_name, run=context.run_id, engine=context.engine, attempt=context.attempt):
        try:
            with anyio.move_on_after(timeout) as scope:
                result = await spec.func(**kwargs, **extra)
        except Exception:
            return Outcome(RunStatus.FAILED, error=traceback.format_exc())
    if scope.cancelled_caught:
        return Outcome(RunStatus.TIMED_OUT, error=f"timed out after {timeout:g} s", reason="timeout")
    return Outcome(RunStatus.SUCCEEDED, result=result)
