"""What a handler author and a deployed system rely on: the public names, one exception base,
the explicit context opt-in, and the stored rows of earlier versions still loading."""

import base64
import datetime as dt
import inspect
import json
import pickle
from pathlib import Path

import pytest

import tasks_app
from tasks_app import exceptions
from tasks_app.handlers.registry import Registry

ROWS = Path(__file__).parent / "fixtures" / "aps_store_rows_v1.json"


@pytest.fixture
def reg():
    return Registry()


def test_a_handler_author_needs_only_the_package():
    from tasks_app import BaseHandler, RunContext, handler  # noqa: F401

    assert set(tasks_app.__all__) <= set(dir(tasks_app))
    assert {"handler", "BaseHandler", "RunContext", "TaskhubError"} <= set(tasks_app.__all__)
    assert tasks_app.handler is tasks_app.registry.handler


def test_the_old_import_path_of_the_decorator_still_works():
    from tasks_app.registry import BaseHandler, handler

    assert handler is tasks_app.handler and BaseHandler is tasks_app.BaseHandler


def test_every_taskhub_exception_derives_from_taskhub_error():
    classes = [obj for _, obj in inspect.getmembers(exceptions, inspect.isclass) if issubclass(obj, Exception)]
    assert len(classes) >= 14
    assert all(issubclass(cls, exceptions.TaskhubError) for cls in classes)
    assert set(exceptions.__all__) == {cls.__name__ for cls in classes}
    for name in exceptions.__all__:  # and each is public where a handler author looks
        assert getattr(tasks_app, name) is getattr(exceptions, name)


def test_the_modules_that_raised_them_still_name_them():
    from tasks_app.engines.base import EngineUnavailable
    from tasks_app.handlers.registry import HandlerError, KwargsError, UnknownHandler
    from tasks_app.scheduling.slots import ScheduleError
    from tasks_app.signing import SignatureError

    assert {SignatureError, EngineUnavailable, HandlerError, KwargsError, UnknownHandler, ScheduleError} <= {
        getattr(exceptions, name) for name in exceptions.__all__
    }
    assert issubclass(exceptions.KwargsError, ValueError) and issubclass(exceptions.UnknownHandler, LookupError)


def test_the_context_is_opted_into_by_its_annotation(reg):
    from tasks_app import RunContext

    @reg.handler
    async def plain(context: RunContext) -> None: ...

    @reg.handler
    async def optional(x: int, context: RunContext | None = None) -> None: ...

    assert reg.get("plain").takes_context and reg.get("optional").takes_context
    assert [p.name for p in reg.get("optional").params] == ["x"]  # never part of a job's kwargs


@pytest.mark.parametrize("annotation", ["", ": int", ": dict | None"])
def test_a_parameter_named_context_without_the_annotation_says_what_to_write(reg, annotation):
    namespace = {}
    exec(f"async def reporting(x: int, context{annotation} = None): pass", namespace)
    with pytest.raises(exceptions.HandlerError) as caught:
        reg.handler(namespace["reporting"])
    assert str(caught.value) == (
        "handler 'reporting': parameter 'context' is reserved for the run's context; write "
        "'context: RunContext' (from tasks_app import RunContext), or name the parameter "
        "otherwise"
    )
    assert "reporting" not in reg


def test_the_old_name_of_the_bundled_handler_module_still_loads_them(reg):
    import tasks_app.handlers.bundled  # noqa: F401  (registered in the process-wide registry)
    from tasks_app.handlers.registry import registry

    registry.load_modules("tasks_app.handlers")  # as a deployment's TASKHUB_HANDLER_MODULES may still say
    assert "number_sum" in registry and registry.get("number_sum").module == "tasks_app.handlers.bundled"


def test_the_api_nonces_are_kept_twice_the_signing_window():
    from tasks_app.models.api_clients import NONCE_KEPT
    from tasks_app.signing import WINDOW_SECONDS

    assert NONCE_KEPT == dt.timedelta(seconds=2 * WINDOW_SECONDS)


def test_the_old_homes_of_stored_references_still_resolve():
    from apscheduler.util import ref_to_obj

    from tasks_app.engines.apscheduler import SlotTrigger, fire

    assert ref_to_obj("tasks_app.engines.apscheduler:fire") is fire
    state = base64.b64decode(json.loads(ROWS.read_text())["rows"][0]["job_state"])
    assert b"tasks_app.engines.apscheduler" in state and b"apscheduler.engine" not in state  # the old path
    assert isinstance(pickle.loads(state)["trigger"], SlotTrigger)


@pytest.mark.django_db
def test_apscheduler_rows_written_before_the_package_layout_still_load_and_fire():
    """Rows django-apscheduler's store holds from main 166cba4 (tests/fixtures/aps_store_rows_v1.json)."""
    from django_apscheduler.jobstores import DjangoJobStore
    from django_apscheduler.models import DjangoJob

    from tasks_app.engines.apscheduler import SlotTrigger, fire
    from tasks_app.engines.apscheduler.manager import SchedulerManager
    from tasks_app.models import Job

    written = json.loads(ROWS.read_text())
    jobs = {}
    for fields in written["jobs"]:
        jobs[fields["pk"]] = Job.objects.create(
            **{k: v for k, v in fields.items() if k != "pk"},
            handler="number_sum",
            kwargs={"x": 1, "y": 2},
            engine="apscheduler",
            enabled=False,
        )
    for row in written["rows"]:
        job = jobs[row["job_pk"]]
        DjangoJob.objects.create(
            id=f"taskhub-job-{job.pk}",
            job_state=base64.b64decode(row["job_state"]),
            next_run_time=dt.datetime.fromisoformat(row["next_run_time"]),
        )
    manager = SchedulerManager()
    manager.scheduler.start(paused=True)
    try:
        store = manager.scheduler._lookup_jobstore("default")
        assert isinstance(store, DjangoJobStore)
        now = dt.datetime.now(dt.UTC)
        for job in jobs.values():
            stored = manager.scheduler.get_job(f"taskhub-job-{job.pk}")
            assert stored.func is fire and isinstance(stored.trigger, SlotTrigger)
            expected = job.next_fire_times(1, after=now)[0]
            assert stored.trigger.get_next_fire_time(None, now) == expected
            job.enabled = True
            manager.apply(job)  # unchanged: the stored row is kept as it is
            assert manager.scheduler.get_job(f"taskhub-job-{job.pk}").trigger == stored.trigger
    finally:
        manager.shutdown(wait=False)
