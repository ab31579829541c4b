"""The process loop: coroutines handed over together, their futures, cancels, and the started signal."""

import asyncio
import concurrent.futures
import threading

import pytest

from tasks_app.runner import loop


async def _step(events: list, key: int) -> int:
    events.append(("begin", key))
    await asyncio.sleep(0)
    events.append(("end", key))
    return threading.get_ident()


def test_coroutines_are_handed_over_together_and_all_begin_before_any_goes_on(monkeypatch):
    process_loop, hand_overs = loop.get_loop(), []
    call_soon_threadsafe = process_loop.call_soon_threadsafe
    monkeypatch.setattr(
        process_loop, "call_soon_threadsafe", lambda *a: hand_overs.append(a) or call_soon_threadsafe(*a)
    )
    events = []
    futures = loop.submit_all([_step(events, key) for key in range(20)])
    assert len(hand_overs) == 1  # one wake-up of the loop's thread for the lot
    threads = {future.result(timeout=10) for future in futures}
    assert events[:20] == [("begin", key) for key in range(20)]  # in order, each before any resumed
    assert threads == {next(iter(threads))} and threading.get_ident() not in threads  # the one loop thread


def test_a_future_cancelled_from_another_thread_cancels_its_coroutine():
    cancelled, begun = threading.Event(), threading.Event()

    async def wait_forever():
        begun.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    [future] = loop.submit_all([wait_forever()])
    assert begun.wait(10)
    assert future.cancel()
    concurrent.futures.wait([future], timeout=10)
    assert cancelled.wait(10) and future.cancelled()


def test_an_error_and_a_result_reach_their_own_futures():
    async def fail():
        raise ValueError("no")

    async def value():
        return 42

    failing, fine = loop.submit_all([fail(), value()])
    with pytest.raises(ValueError, match="no"):
        failing.result(timeout=10)
    assert fine.result(timeout=10) == 42
    assert loop.submit_all([]) == []


def test_the_started_callback_comes_once_every_coroutine_submitted_before_has_begun():
    events, started = [], threading.Event()
    futures = loop.submit_all([_step(events, key) for key in range(5)])
    loop.call_after_started(lambda: (events.append("started"), started.set()))
    assert started.wait(10)
    concurrent.futures.wait(futures, timeout=10)
    assert events.index("started") > max(events.index(("begin", key)) for key in range(5))
