"""Plain Celery tasks, the stock peers of ``taskhub.run_job``: a worker loads them with ``-I bench.peer_tasks``.

- ``add``: a sync task whose result django-celery-results stores (the project's result backend).
- ``add_no_result``: the same without a result (``ignore_result=True``).
- ``add_anyio_run``: calls an async function with ``anyio.run`` per call (the common workaround).
- ``add_process_loop``: awaits it on taskhub's long-lived process loop (``tasks_app.runner.loop``).
- ``stamp``: records when it started (``time.time()``) as its stored result; the stock beat sends it.
"""

import time

import anyio
from celery import shared_task

from tasks_app.runner import loop


async def add_async(x: int, y: int) -> int:
    return x + y


@shared_task(name="bench.peer.add")
def add(x: int, y: int) -> int:
    return x + y


@shared_task(name="bench.peer.add_no_result", ignore_result=True)
def add_no_result(x: int, y: int) -> int:
    return x + y


@shared_task(name="bench.peer.add_anyio_run", ignore_result=True)
def add_anyio_run(x: int, y: int) -> int:
    return anyio.run(add_async, x, y)


@shared_task(name="bench.peer.add_process_loop", ignore_result=True)
def add_process_loop(x: int, y: int) -> int:
    return loop.submit(add_async(x, y)).result()


@shared_task(name="bench.peer.stamp")
def stamp(tag: str = "") -> dict:
    return {"tag": tag, "started": time.time()}
