"""taskhub as a Django Tasks backend (``tasks_app.django_tasks``): enqueue, defer, results, errors, context.

The engine tests run each task in a real engine process (``runapscheduler``, a Celery worker) and
read its result here, in another process; the ``ImmediateBackend`` of django-tasks, which runs the
same task in this process, is the reference for what a result says.
"""

import datetime as dt
import importlib
import math
import os
import time

import pytest
from asgiref.sync import async_to_sync
from django.core.exceptions import ValidationError
from django.test import override_settings
from django.utils import timezone
from django_tasks import TaskResultStatus, task, task_backends
from django_tasks.exceptions import InvalidTaskError, TaskResultDoesNotExist
from django_tasks.signals import task_enqueued
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks_app.django_tasks import registration
from tasks_app.engines import request_run
from tasks_app.models import Job, JobRun
from tests import helpers
from tests.processes import processes, wait_for  # noqa: F401  (fixture)

pytestmark = pytest.mark.timeout(240)
MODULE = "tests.tasks_for_tests"
BACKEND = "tasks_app.django_tasks.TaskhubBackend"
TASKS = {
    "default": {"BACKEND": BACKEND, "QUEUES": [], "OPTIONS": {"ENGINE": "apscheduler"}},
    "celery": {"BACKEND": BACKEND, "QUEUES": [], "OPTIONS": {"ENGINE": "celery"}},
    "immediate": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"},
}


@pytest.fixture
def tasks(taskhub_settings):
    """The test task module, allow-listed and registered as at start-up; unregistered afterwards."""
    taskhub_settings(TASK_MODULES=[MODULE])
    with override_settings(TASKS=TASKS):
        names = registration.register_modules([MODULE])
        yield importlib.import_module(MODULE)
        for name in names:
            registration.unregister(name)


def start_engine(processes, engine: str) -> None:
    if engine == "celery":
        processes.worker(TASKHUB_TASK_MODULES=MODULE)
        return
    from tests.test_apscheduler_engine import leader_pid

    proc = processes.apscheduler(TASKHUB_TASK_MODULES=MODULE)
    assert wait_for(lambda: leader_pid() == proc.pid, timeout=30), processes.output(proc)[-3000:]


def finished(result):
    def read():
        fresh = task_backends[result.backend].get_result(result.id)
        return fresh if fresh.is_finished else None

    return wait_for(read, timeout=30)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("engine", ["apscheduler", "celery"])
def test_tasks_run_in_the_engine_process_and_their_results_read_here(tasks, processes, make_job, engine):
    backend = "default" if engine == "apscheduler" else "celery"
    added = tasks.add.using(backend=backend).enqueue(2, y=3)  # before the engine runs: it waits for it
    start_engine(processes, engine)
    echoed = tasks.async_echo.using(backend=backend).enqueue({"a": [1, 2]})
    failed = tasks.explode.using(backend=backend).enqueue("boom")
    contextual = tasks.with_context.using(backend=backend).enqueue(tag="t")
    assert added.status == TaskResultStatus.READY and added.args == [2] and added.kwargs == {"y": 3}

    result = finished(added)
    assert result.status == TaskResultStatus.SUCCESSFUL, result.errors
    assert result.return_value == 5 == tasks.add.using(backend="immediate").enqueue(2, y=3).return_value
    assert result.enqueued_at <= result.started_at <= result.finished_at and result.attempts == 1
    run = JobRun.objects.select_related("job").get(pk=int(added.id))
    assert (run.engine, run.job.engine, run.job.handler, run.job.enabled) == (engine, engine, f"{MODULE}.add", False)
    assert tasks.add.get_result(added.id).return_value == 5

    echo = finished(echoed).return_value
    assert echo["echo"] == {"a": [1, 2]} and echo["pid"] != os.getpid()  # run by the engine process, not here

    error = finished(failed)
    reference = tasks.explode.using(backend="immediate").enqueue("boom")
    assert error.status == reference.status == TaskResultStatus.FAILED
    assert [e.exception_class_path for e in error.errors] == [e.exception_class_path for e in reference.errors]
    assert error.errors[0].exception_class is KeyError and "raise KeyError(message)" in error.errors[0].traceback
    with pytest.raises(ValueError, match="Task failed"):
        error.return_value  # noqa: B018  (the framework raises for a failed task)

    context = finished(contextual).return_value
    assert context["tag"] == "t" and context["id"] == contextual.id and context["attempt"] == 1

    scheduled = make_job(engine=engine, handler=f"{MODULE}.with_context", kwargs={"tag": "job"})  # as in the admin
    run = request_run(scheduled)
    assert wait_for(lambda: JobRun.objects.get(pk=run.pk).finished)
    assert JobRun.objects.get(pk=run.pk).result["id"] == str(run.pk)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("engine", ["apscheduler", "celery"])
def test_run_after_defers_the_task(tasks, processes, engine):
    backend = "default" if engine == "apscheduler" else "celery"
    start_engine(processes, engine)
    after = timezone.now() + dt.timedelta(seconds=3)
    deferred = tasks.add.using(backend=backend, run_after=after).enqueue(1, 1)
    assert task_backends[backend].get_result(deferred.id).status == TaskResultStatus.READY
    result = finished(deferred)
    assert result.return_value == 2 and result.started_at >= after


@pytest.mark.django_db
@pytest.mark.parametrize("value", [object(), {1, 2}, dt.date(2026, 1, 1), b"\xff", math.nan, [math.inf]])
def test_arguments_that_are_no_json_are_refused_at_enqueue(tasks, value):
    with pytest.raises((TypeError, ValueError)):
        tasks.async_echo.enqueue(value)
    with pytest.raises((TypeError, ValueError)):  # the reference refuses the same values (NaN aside: no JSON)
        if isinstance(value, float) or isinstance(value, list):
            raise ValueError("NaN and infinities are no JSON")
        tasks.async_echo.using(backend="immediate").enqueue(value)
    assert not JobRun.objects.exists()


@pytest.mark.django_db
def test_arguments_that_do_not_fit_the_signature_are_refused_at_enqueue(tasks):
    with pytest.raises(TypeError, match="missing a required argument"):
        tasks.add.enqueue(1)
    with pytest.raises(TypeError, match="x"):
        tasks.add.enqueue("1", 2)  # strict, like a handler's kwargs: "1" is no int
    with pytest.raises(TypeError, match="NUL"):
        tasks.async_echo.enqueue({"a\x00": 1})  # JSON, but no database stores it: refused, not a 500
    assert not JobRun.objects.exists()


@pytest.mark.django_db
def test_a_task_outside_the_allow_listed_modules_is_refused(tasks):
    with pytest.raises(InvalidTaskError, match="TASKHUB_TASK_MODULES"):
        task(helpers.wait_for)
    with pytest.raises(InvalidTaskError, match="Queue name"):
        tasks.add.using(queue_name="Not A Queue")


def test_check_names_a_wrong_engine():
    with override_settings(TASKS={"default": {"BACKEND": BACKEND, "OPTIONS": {"ENGINE": "rq"}}}):
        messages = list(task_backends["default"].check())
    assert [m.id for m in messages] == ["taskhub.E020"] and "'rq'" in messages[0].msg
    with override_settings(TASKS=TASKS):
        assert list(task_backends["celery"].check()) == []


@pytest.mark.django_db
def test_get_result_of_an_unknown_id_or_a_run_of_no_task(tasks, make_job):
    run = JobRun.objects.create(job=make_job(), engine="apscheduler", scheduled_for=timezone.now())
    for result_id in ("nope", "0", str(run.pk)):
        with pytest.raises(TaskResultDoesNotExist):
            task_backends["default"].get_result(result_id)


@pytest.mark.django_db
def test_a_job_in_the_admin_may_name_a_task_with_its_arguments_checked(tasks, make_job):
    job = make_job(handler=f"{MODULE}.add", kwargs={"x": 1, "y": 2})
    assert Job.objects.get(pk=job.pk).spec.validate_kwargs(job.kwargs) == {"x": 1, "y": 2}
    job.kwargs = {"x": "1"}
    with pytest.raises(ValidationError) as caught:
        job.full_clean()
    assert "kwargs" in caught.value.message_dict


@pytest.mark.django_db
def test_priority_and_queue_name_the_job_that_carries_the_runs(tasks, taskhub_settings, memory_engines):
    first = tasks.add.using(priority=100, queue_name="urgent").enqueue(1, 2)
    last = tasks.add.using(priority=-100).enqueue(1, 2)
    jobs = [JobRun.objects.get(pk=int(r.id)).job for r in (first, last)]
    assert [(j.queue, j.priority) for j in jobs] == [("urgent", 0), ("default", 9)]


# Postgres stores no NUL and JSON no lone surrogate: both refused, tested below and in NOT_JSON
TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)))
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
NOT_JSON = st.sampled_from(
    [object(), {1}, frozenset(), dt.date(2026, 1, 1), b"\xff", 1j, math.nan, -math.inf, "\ud800", {"\udfff": 1}]
)


@pytest.mark.django_db
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=JSON, bad=NOT_JSON)
def test_json_arguments_round_trip_and_any_other_value_is_refused(tasks, value, bad):
    result = tasks.async_echo.enqueue({"v": value})
    stored = JobRun.objects.get(pk=int(result.id))
    assert stored.kwargs == {"value": {"v": value}} == task_backends["default"].get_result(result.id).kwargs
    queued = JobRun.objects.count()
    with pytest.raises((TypeError, ValueError)):
        tasks.async_echo.enqueue({"v": value, "bad": [bad]})
    assert JobRun.objects.count() == queued


@pytest.mark.django_db
def test_aenqueue_and_aget_result_and_the_enqueued_signal(tasks):
    seen = []
    task_enqueued.connect(lambda sender, task_result, **kw: seen.append(task_result.id), weak=False, dispatch_uid="t")
    try:
        result = async_to_sync(tasks.add.aenqueue)(1, 2)
    finally:
        task_enqueued.disconnect(dispatch_uid="t")
    assert seen == [result.id]
    fresh = async_to_sync(tasks.add.aget_result)(result.id)
    assert (fresh.status, fresh.args, fresh.kwargs, fresh.is_finished) == (
        TaskResultStatus.READY,
        [],
        {"x": 1, "y": 2},
        False,
    )
    with pytest.raises(ValueError, match="not finished"):
        fresh.return_value  # noqa: B018


@pytest.mark.django_db
def test_a_result_lists_every_failed_attempt(tasks):
    result = tasks.explode.enqueue("boom")
    run = JobRun.objects.get(pk=int(result.id))
    started = timezone.now()
    earlier = {"attempt": 1, "status": "failed", "worker": "a:1", "started_at": started.isoformat()}
    earlier["error"] = "Traceback (most recent call last):\n  ...\nKeyError: 'boom'\n"
    JobRun.objects.filter(pk=run.pk).update(
        status="timed_out", attempt=2, attempts=[earlier], worker="b:2", started_at=started, finished_at=started
    )
    fresh = tasks.explode.get_result(result.id)
    assert [e.exception_class_path for e in fresh.errors] == ["builtins.KeyError", "builtins.TimeoutError"]
    assert (fresh.status, fresh.worker_ids, fresh.attempts) == (TaskResultStatus.FAILED, ["a:1", "b:2"], 2)
    JobRun.objects.filter(pk=run.pk).update(status="cancelled", reason="cancelled by a person")
    assert tasks.explode.get_result(result.id).errors[-1].exception_class.__name__ == "CancelledError"


@pytest.mark.django_db
def test_a_job_of_the_same_name_with_another_handler_is_not_taken_over(tasks, make_job):
    make_job(name=f"task.apscheduler.{MODULE}.add", handler="number_sum", kwargs={"x": 1, "y": 2})
    with pytest.raises(InvalidTaskError, match="number_sum"):
        tasks.add.enqueue(1, 2)


@pytest.mark.django_db(transaction=True)
def test_a_task_past_its_jobs_timeout_is_cancelled_and_its_result_says_timeout(tasks, memory_engines):
    """The task's job carries the timeout like any job's (set in the admin); the runner enforces it on the loop."""
    first = tasks.nap.enqueue(0)
    job = JobRun.objects.get(pk=int(first.id)).job
    Job.objects.filter(pk=job.pk).update(timeout_seconds=1)
    started = time.monotonic()
    result = tasks.nap.enqueue(30)  # the in-process engine runs it on commit
    run = JobRun.objects.get(pk=int(result.id))
    fresh = wait_for(lambda: (r := tasks.nap.get_result(result.id)).is_finished and r, timeout=20)
    assert fresh, "still running 20 s after it was enqueued: not cancelled at its 1 s timeout"
    assert time.monotonic() - started < 20  # cancelled at its timeout, not after the 30 s nap
    assert (fresh.status, JobRun.objects.get(pk=run.pk).status) == (TaskResultStatus.FAILED, "timed_out")
    assert fresh.errors[-1].exception_class_path == "builtins.TimeoutError"
