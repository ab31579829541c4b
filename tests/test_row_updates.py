"""The outcome's ``UPDATE`` with its text made once: the same row the ORM's update writes, only for its claim."""

import datetime as dt

import pytest
from django.db import connection
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext

from tasks_app.models import JobRun
from tasks_app.runner.row_updates import update_run

pytestmark = pytest.mark.django_db(transaction=True)

SLOT = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)
VALUES = [
    {"status": "succeeded", "result": {"n": [1, 2.5, None, "é"]}, "error": "", "progress": 1.0, "lane": None},
    {"status": "failed", "result": None, "error": "Traceback …", "attempts": [{"attempt": 1}], "progress": None},
    {"status": "queued", "next_attempt_at": SLOT, "started_at": None, "heartbeat_at": None, "worker": ""},
]


def _running(job, minutes: int) -> JobRun:
    return JobRun.objects.create(
        job=job,
        engine="celery",
        scheduled_for=SLOT + dt.timedelta(minutes=minutes),
        status="running",
        worker="host:1",
        attempt=1,
        lane=1 + minutes,
        started_at=SLOT,
        heartbeat_at=SLOT,
    )


@pytest.mark.parametrize("values", VALUES)
def test_it_writes_what_the_orm_s_update_writes(make_job, values):
    job = make_job(max_running=5)
    by_orm, by_text = _running(job, 0), _running(job, 1)
    JobRun.objects.filter(pk=by_orm.pk, worker="host:1", attempt=1).update(**values)
    with CaptureQueriesContext(connection) as queries:
        assert update_run(by_text.pk, {"worker": "host:1", "attempt": 1}, values) == 1
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["UPDATE"]  # counted like any statement
    ignored = {"id", "scheduled_for", "created_at", "lane"} - set(values)
    orm_row, text_row = (model_to_dict(JobRun.objects.get(pk=r.pk)) for r in (by_orm, by_text))
    assert {k: v for k, v in orm_row.items() if k not in ignored} == {
        k: v for k, v in text_row.items() if k not in ignored
    }
    if "result" in values:  # a JSON None is SQL NULL, as the ORM's update writes it
        assert JobRun.objects.filter(pk=by_text.pk, result__isnull=values["result"] is None).exists()


def test_a_row_no_longer_held_by_the_claim_is_left_alone(make_job):
    run = _running(make_job(), 0)
    assert update_run(run.pk, {"worker": "host:1", "attempt": 2}, {"status": "succeeded"}) == 0
    assert update_run(run.pk, {"worker": "other:2", "attempt": 1}, {"status": "succeeded"}) == 0
    run.refresh_from_db()
    assert run.status == "running"
