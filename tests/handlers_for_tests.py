"""Handlers the tests register: they count calls, block, or misbehave on purpose."""

import asyncio
import sys
import threading
import traceback

import anyio

from tasks_app import RunContext, handler

calls: dict[str, int] = {}
_lock = threading.Lock()
release = threading.Event()


def count(name: str) -> None:
    with _lock:
        calls[name] = calls.get(name, 0) + 1


@handler(name="test_count")
async def test_count(key: str, delay: float = 0.0) -> int:
    count(key)
    await anyio.sleep(delay)
    return calls[key]


@handler(name="test_wait")
async def test_wait(key: str, context: RunContext | None = None) -> str:
    """Report progress, then wait until the test sets ``release``."""
    count(key)
    context.report_progress(0.5, "half way")
    while not release.is_set():
        await anyio.sleep(0.02)
    return "released"


@handler(name="test_loop_id")
async def test_loop_id() -> int:
    return id(asyncio.get_running_loop())


@handler(name="test_not_json")
async def test_not_json() -> object:
    return {1, 2, 3}


@handler(name="test_flaky", retries=2, retry_backoff=0.01)
async def test_flaky(key: str, fail_times: int) -> str:
    count(key)
    if calls[key] <= fail_times:
        raise ValueError(f"failure number {calls[key]}")
    return "ok"


@handler(name="test_slow")
async def test_slow(seconds: float, context: RunContext | None = None) -> str:
    """Sleep, reporting progress; a process that is killed meanwhile leaves the run running."""
    for step in range(10):
        await anyio.sleep(seconds / 10)
        context.report_progress((step + 1) / 10)
    return "done"


@handler(name="test_print_traceback")
async def test_print_traceback(marker: str) -> str:
    """Write a multi-line traceback to stderr, as a library that reports an error by printing does."""
    try:
        raise RuntimeError(marker)
    except RuntimeError:
        traceback.print_exc(file=sys.stderr)
    return "printed"


outcomes: dict[str, object] = {}


@handler(name="test_outcome")
async def test_outcome(key: str) -> object:
    """Return what the test put in ``outcomes[key]``, or raise it when it is an exception."""
    value = outcomes[key]
    if isinstance(value, BaseException):
        raise value
    return value


@handler(name="test_progress_message")
async def test_progress_message(key: str, context: RunContext | None = None) -> str:
    """Report ``outcomes[key]`` as the progress message, then wait until the test sets ``release``."""
    context.report_progress(0.5, outcomes[key])
    while not release.is_set():
        await anyio.sleep(0.02)
    return "released"


@handler(name="test_kill_own_process")
async def test_kill_own_process() -> str:
    """A poison run: it kills the (pool) process running it, every time."""
    import os
    import signal

    os.kill(os.getpid(), signal.SIGKILL)
    return "unreachable"
