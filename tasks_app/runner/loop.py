"""One long-lived asyncio event loop per process, running in a daemon thread.

Handlers run here, so async clients and connection pools they keep survive from one
run to the next (no ``asyncio.run`` per call, which closes the loop under them). The
loop is made on first use, or explicitly at worker start; a forked child makes its own.
"""

import asyncio
import concurrent.futures
import os
import threading

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def get_loop() -> asyncio.AbstractEventLoop:
    global _loop, _thread
    with _lock:
        if _loop is None or _loop.is_closed() or not _thread.is_alive():
            _loop = asyncio.new_event_loop()
            _thread = threading.Thread(target=_loop.run_forever, name="taskhub-loop", daemon=True)
            _thread.start()
        return _loop


def submit(coro) -> concurrent.futures.Future:
    """Schedule ``coro`` on the process loop; the future can be waited on and cancelled."""
    return asyncio.run_coroutine_threadsafe(coro, get_loop())


def submit_all(coros: list) -> list[concurrent.futures.Future]:
    """Schedule the coroutines on the process loop in one hand-over; each one's future, as ``submit`` gives it.

    A future cancelled from another thread cancels its coroutine's task, as with ``submit``.
    """
    if not coros:
        return []
    loop = get_loop()
    futures = [concurrent.futures.Future() for _ in coros]

    def start_all():
        for coro, future in zip(coros, futures, strict=True):
            if future.cancelled():
                coro.close()
                future.set_running_or_notify_cancel()
            else:
                _follow(loop.create_task(coro), future, loop)

    loop.call_soon_threadsafe(start_all)
    return futures


def _follow(task: asyncio.Task, future: concurrent.futures.Future, loop) -> None:
    """Make ``future`` end as ``task`` ends, and cancelling ``future`` cancel ``task`` (asyncio's own chaining)."""

    def task_done(task):
        if task.cancelled():
            future.cancel()
        if not future.set_running_or_notify_cancel():
            return
        if task.exception() is not None:
            future.set_exception(task.exception())
        else:
            future.set_result(task.result())

    def future_done(future):
        if future.cancelled():
            loop.call_soon_threadsafe(task.cancel)

    task.add_done_callback(task_done)
    future.add_done_callback(future_done)


def call_after_started(callback) -> None:
    """Call ``callback()`` on the loop once every coroutine submitted before it has begun (run to its first wait).

    The loop starts tasks in the order they were submitted, so a task submitted last takes its first
    step after every earlier one took theirs.
    """

    async def call():
        callback()

    submit(call())


def shutdown(timeout: float = 5.0) -> None:
    global _loop, _thread
    with _lock:
        loop, thread, _loop, _thread = _loop, _thread, None, None
    if loop is None:
        return
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout)
    if not loop.is_running():
        loop.close()


def _forget_after_fork() -> None:
    # The loop's thread does not exist in a forked child; the child makes its own loop.
    global _loop, _thread, _lock
    _loop, _thread, _lock = None, None, threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)
