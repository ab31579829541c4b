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
