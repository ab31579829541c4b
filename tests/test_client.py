"""The Celery client with real processes: a prefork worker on Redis, results in django-celery-results.

The worker imports this module as a handler module (``HANDLERS``) for the two handlers below.
"""

import datetime as dt
import json
import time

import pytest
import redis
from django.utils import timezone
from django_celery_results.models import GroupResult, TaskResult

from tasks_app.engines.celery import client
from tasks_app.handlers.registry import KwargsError, UnknownHandler, handler
from tests.helpers import clean_env, python
from tests.processes import processes, wait_for  # noqa: F401  (fixture)
from tests.services import REDIS_URL

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]

HANDLERS = "tasks_app.handlers.bundled,tests.handlers_for_tests,tests.test_client"


@handler(name="test_client_total")
async def total(results: list[int], plus: int = 0) -> int:
    return sum(results) + plus


@handler(name="test_client_double")
async def double(results: int) -> int:
    return 2 * results


@pytest.fixture
def worker(processes):
    proc = processes.worker(concurrency=3, TASKHUB_HANDLER_MODULES=HANDLERS)
    assert wait_for(lambda: "ready" in processes.output(proc), timeout=60), processes.output(proc)[-2000:]
    return proc


def queued() -> int:
    return redis.Redis.from_url(REDIS_URL).llen("default")


def test_submit_gives_the_result_from_django_celery_results(worker, processes):
    task_id = client.submit("number_sum", {"x": 2, "y": 3})
    assert client.result(task_id, timeout=30) == 5
    assert f"run_handler[{task_id}] succeeded" in processes.output(worker)
    row = TaskResult.objects.get(task_id=task_id)
    assert (row.status, json.loads(row.result), row.task_name) == ("SUCCESS", 5, "taskhub.run_handler")


def test_status_goes_from_pending_to_success(worker):
    task_id = client.submit("sleep", {"seconds": 1, "steps": 2})
    seen = [client.status(task_id)]

    def finished():
        if (state := client.status(task_id)) != seen[-1]:
            seen.append(state)
        return state == "SUCCESS"

    assert wait_for(finished, timeout=30, interval=0.05)
    assert seen[0] == "PENDING" and seen[-1] == "SUCCESS"
    assert set(seen) <= {"PENDING", "STARTED", "SUCCESS"}


def test_a_failing_handler_raises_its_message_and_is_a_failure(worker):
    task_id = client.submit("fail", {"message": "disk full on /var"})
    with pytest.raises(client.TaskFailed, match="disk full on /var") as failed:
        client.result(task_id, timeout=30)
    assert (failed.value.task_id, failed.value.state) == (task_id, "FAILURE")
    assert client.status(task_id) == "FAILURE"
    assert TaskResult.objects.get(task_id=task_id).status == "FAILURE"


def test_bad_input_raises_and_sends_nothing(processes):
    with pytest.raises(UnknownHandler, match="no_such_handler"):
        client.submit("no_such_handler")
    with pytest.raises(KwargsError, match="x"):
        client.submit("number_sum", {"x": "2", "y": 3})
    with pytest.raises(KwargsError, match="y"):
        client.call("number_sum", {"x": 2})
    with pytest.raises(KwargsError, match="results"):
        client.call_with_results("number_sum", {"x": 1, "y": 1})  # declares no `results`
    with pytest.raises(KwargsError, match="plus"):
        client.call_with_results("test_client_total", {"plus": "1"})
    with pytest.raises(TypeError, match="chord body"):
        client.chord([client.call("number_sum", {"x": 1, "y": 1})], client.call("number_sum", {"x": 1, "y": 1}))
    with pytest.raises(TypeError, match="no results to receive"):
        client.group(client.call_with_results("test_client_total"))
    assert queued() == 0

    task_id = client.submit("number_sum", {"x": 1, "y": 1})  # the same check sees a message that was sent
    assert queued() == 1
    with pytest.raises(TimeoutError, match=task_id):  # no worker runs it
        client.result(task_id, timeout=0.5)


def test_a_chain_of_calls_runs_in_order_and_stops_at_a_failure(worker):
    slowest_first = [client.call("sleep", {"seconds": s, "steps": 1}) for s in (0.9, 0.5, 0.1)]
    last = client.chain(*slowest_first)
    assert client.result(last, timeout=60) == {"slept": 0.1}
    done = TaskResult.objects.filter(task_name="taskhub.run_handler").order_by("date_done")
    assert [json.loads(row.result) for row in done] == [{"slept": 0.9}, {"slept": 0.5}, {"slept": 0.1}]

    passed_on = client.chain(
        client.call("number_sum", {"x": 2, "y": 3}), client.call_with_results("test_client_double")
    )
    assert client.result(passed_on, timeout=30) == 10

    broken = client.chain(
        client.call("fail", {"message": "link two broke"}), client.call("number_sum", {"x": 1, "y": 1})
    )
    with pytest.raises(client.TaskFailed, match="link two broke"):
        client.result(broken, timeout=30)
    assert not TaskResult.objects.filter(task_id=broken, status="SUCCESS").exists()


def test_a_group_gives_the_list_of_results(worker):
    group_id = client.group(*(client.call("number_sum", {"x": n, "y": n}) for n in (1, 2, 3)))
    assert GroupResult.objects.filter(group_id=group_id).exists()
    assert client.result(group_id, timeout=30) == [2, 4, 6]
    assert client.status(group_id) == "SUCCESS"


def test_a_chord_body_gets_the_header_results(worker):
    header = [client.call("number_sum", {"x": n, "y": 10 * n}) for n in (1, 2, 3)]
    body_id = client.chord(header, client.call_with_results("test_client_total", {"plus": 1000}))
    assert client.result(body_id, timeout=60) == 1066
    assert TaskResult.objects.get(task_id=body_id).task_name == "taskhub.run_handler_with_results"


def test_a_revoked_countdown_task_never_runs(worker, processes):
    task_id = client.submit("number_sum", {"x": 1, "y": 1}, countdown=2)
    due = time.monotonic() + 2
    client.revoke(task_id)
    assert wait_for(lambda: client.status(task_id) == "REVOKED", timeout=30), client.status(task_id)
    assert wait_for(lambda: f"revoked task: taskhub.run_handler[{task_id}]" in processes.output(worker)), (
        processes.output(worker)[-3000:]
    )  # the worker dropped it when it came due
    assert time.monotonic() >= due
    assert client.status(task_id) == "REVOKED"
    assert f"run_handler[{task_id}] succeeded" not in processes.output(worker)
    with pytest.raises(client.TaskFailed, match="REVOKED"):
        client.result(task_id, timeout=5)


def test_a_countdown_delays_the_run(worker):
    sent_at = timezone.now()
    task_id = client.submit("number_sum", {"x": 4, "y": 4}, countdown=2)
    assert client.status(task_id) == "PENDING"
    assert client.result(task_id, timeout=30) == 8
    assert TaskResult.objects.get(task_id=task_id).date_done - sent_at >= dt.timedelta(seconds=2)


def test_a_default_worker_knows_the_chord_body_task():
    """``celery -A taskhub worker`` imports what autodiscovery finds: the chord-body task is in
    tasks_app.engines.celery.tasks beside the others."""
    code = (
        "from taskhub.celery import app; app.loader.import_default_modules(); "
        "print('taskhub.run_handler_with_results' in app.tasks)"
    )
    done = python(code, env=clean_env(SECRET_KEY="k"))
    assert done.stdout.strip() == "True", done.stderr[-2000:]
