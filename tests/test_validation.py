"""Bad input gets a clear message and changes nothing — the same from every door.

One matrix of bad jobs, each posted through ``full_clean()``, ``Job.objects.create()``
and ``manage.py sync_jobs``; bad kwargs also through ``manage.py run_job --kwargs``.
(The admin form's pass over the same matrix is in test_admin_validation.py.)
"""

import datetime as dt
import json

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.utils import timezone

from tasks_app.models import Job, JobRun

GOOD = {
    "name": "valid-job",
    "handler": "number_sum",
    "kwargs": {"x": 1, "y": 2},
    "engine": "apscheduler",
    "schedule_type": "cron",
    "cron_expression": "*/5 * * * *",
    "timezone": "UTC",
}
PAST = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


def nested(depth: int, leaf=0):
    """``depth`` lists, one inside the other, around ``leaf``."""
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


# (id, overrides, field with the error, a fragment of its message)
BAD = [
    ("empty-name", {"name": ""}, "name", "cannot be blank"),
    ("name-with-space", {"name": "bad name"}, "name", "lowercase letters"),
    ("name-uppercase", {"name": "Nightly"}, "name", "lowercase letters"),
    ("name-too-long", {"name": "a" * 101}, "name", "at most 100"),
    ("empty-handler", {"handler": ""}, "handler", "cannot be blank"),
    ("unknown-handler", {"handler": "no_such_handler"}, "handler", "Unknown handler 'no_such_handler'"),
    ("kwargs-list", {"kwargs": [1, 2]}, "kwargs", "kwargs must be a JSON object"),
    ("kwargs-string", {"kwargs": "x=1"}, "kwargs", "kwargs must be a JSON object"),
    ("kwargs-string-for-int", {"kwargs": {"x": "1", "y": 2}}, "kwargs", "x: must be an integer"),
    ("kwargs-float-for-int", {"kwargs": {"x": 1.5, "y": 2}}, "kwargs", "x: must be an integer"),
    ("kwargs-bool-for-int", {"kwargs": {"x": True, "y": 2}}, "kwargs", "x: must be an integer"),
    ("kwargs-missing", {"kwargs": {"x": 1}}, "kwargs", "y: missing"),
    ("kwargs-unknown", {"kwargs": {"x": 1, "y": 2, "z": 3}}, "kwargs", "z: unknown parameter"),
    ("kwargs-context", {"handler": "echo", "kwargs": {"context": {}}}, "kwargs", "context: is supplied by taskhub"),
    ("kwargs-not-number", {"handler": "sleep", "kwargs": {"seconds": "fast"}}, "kwargs", "seconds: must be a number"),
    ("kwargs-naive-datetime", {"handler": "echo", "kwargs": {"when": "2030-01-01T00:00:00"}}, "kwargs", "time zone"),
    ("kwargs-nul", {"handler": "echo", "kwargs": {"payload": {"a": "x\x00y"}}}, "kwargs", "NUL character"),
    ("kwargs-nul-in-key", {"handler": "echo", "kwargs": {"payload": {"a\x00": 1}}}, "kwargs", "NUL character"),
    ("kwargs-nul-in-name", {"kwargs": {"x": 1, "y": 2, "\x00": 3}}, "kwargs", "NUL character"),
    ("kwargs-surrogate", {"handler": "echo", "kwargs": {"payload": {"a": ["\ud800"]}}}, "kwargs", "surrogate"),
    (
        "kwargs-1200-deep",
        {"handler": "echo", "kwargs": {"payload": {"a": nested(1200)}}},
        "kwargs",
        "nested too deeply",
    ),
    ("kwargs-33-deep", {"handler": "echo", "kwargs": {"payload": {"a": nested(31)}}}, "kwargs", "at most 32 levels"),
    ("kwargs-too-large", {"handler": "echo", "kwargs": {"payload": {"a": "x" * 70_000}}}, "kwargs", "too large"),
    ("kwargs-nan", {"handler": "sleep", "kwargs": {"seconds": float("nan")}}, "kwargs", "seconds: may not be NaN"),
    ("kwargs-huge-int", {"kwargs": {"x": 10**5000, "y": 2}}, "kwargs", "JSON"),
    ("description-nul", {"description": "a\x00b"}, "description", "may not contain the NUL character"),
    ("cron-empty", {"cron_expression": ""}, "cron_expression", "needs a cron expression"),
    ("cron-4-fields", {"cron_expression": "* * * *"}, "cron_expression", "must have 5 fields"),
    ("cron-6-fields", {"cron_expression": "0 * * * * *"}, "cron_expression", "got 6"),
    ("cron-minute-61", {"cron_expression": "61 * * * *"}, "cron_expression", "minute field '61' is invalid"),
    ("cron-hour-24", {"cron_expression": "0 24 * * *"}, "cron_expression", "hour field '24' is invalid"),
    ("cron-never", {"cron_expression": "0 0 31 2 *"}, "cron_expression", "never fires within 10 years"),
    ("cron-alias", {"cron_expression": "@reboot"}, "cron_expression", "not supported"),
    ("cron-words", {"cron_expression": "every day at noon"}, "cron_expression", "cron"),
    ("timezone-unknown", {"timezone": "Mars/Olympus_Mons"}, "timezone", "unknown time zone"),
    ("timezone-empty", {"timezone": ""}, "timezone", ""),
    (
        "interval-zero",
        {"schedule_type": "interval", "interval_seconds": 0},
        "interval_seconds",
        "greater than or equal to 1",
    ),
    (
        "interval-negative",
        {"schedule_type": "interval", "interval_seconds": -5},
        "interval_seconds",
        "greater than or equal to",
    ),
    (
        "interval-over-a-year",
        {"schedule_type": "interval", "interval_seconds": 31_536_001},
        "interval_seconds",
        "less than or equal to 31536000",
    ),
    ("interval-missing", {"schedule_type": "interval"}, "interval_seconds", "needs its interval"),
    ("once-missing-run-at", {"schedule_type": "once"}, "run_at", "needs the time"),
    ("once-in-the-past", {"schedule_type": "once", "run_at": PAST}, "run_at", "must be in the future"),
    ("engine-unknown", {"engine": "cron"}, "engine", "not a valid choice"),
    ("schedule-type-unknown", {"schedule_type": "weekly"}, "schedule_type", "not a valid choice"),
    ("priority-10", {"priority": 10}, "priority", "less than or equal to 9"),
    ("max-running-0", {"max_running": 0}, "max_running", "greater than or equal to 1"),
    ("timeout-0", {"timeout_seconds": 0}, "timeout_seconds", "greater than or equal to 1"),
    ("backoff-negative", {"retry_backoff_seconds": -1.0}, "retry_backoff_seconds", "greater than or equal to 0"),
    ("queue-with-space", {"queue": "slow queue"}, "queue", "lowercase letters"),
]
CASES = [pytest.param(overrides, field, fragment, id=case_id) for case_id, overrides, field, fragment in BAD]


def bad_job(overrides) -> dict:
    return {**GOOD, **overrides}


@pytest.mark.django_db
@pytest.mark.parametrize("overrides, field, fragment", CASES)
def test_full_clean_rejects_with_a_field_message(overrides, field, fragment):
    with pytest.raises(ValidationError) as caught:
        Job(**bad_job(overrides)).full_clean()
    messages = caught.value.message_dict
    assert field in messages, messages
    assert fragment in " ".join(messages[field])


@pytest.mark.django_db
@pytest.mark.parametrize("overrides, field, fragment", CASES)
def test_the_orm_refuses_to_store_it(overrides, field, fragment):
    with pytest.raises(ValidationError) as caught:
        Job.objects.create(**bad_job(overrides))
    assert field in caught.value.message_dict
    assert Job.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("overrides, field, fragment", CASES)
def test_sync_jobs_refuses_with_one_line_and_writes_nothing(overrides, field, fragment, taskhub_settings):
    Job.objects.create(**{**GOOD, "name": "already-there"})
    declared = [{**GOOD, "name": "first-good-one"}, bad_job({"name": "declared-bad", **overrides})]
    taskhub_settings(JOBS=declared)
    with pytest.raises(CommandError) as caught:
        call_command("sync_jobs")
    message = str(caught.value)
    assert "\n" not in message and field in message and fragment in message
    assert list(Job.objects.values_list("name", flat=True)) == ["already-there"]


@pytest.mark.django_db
def test_a_duplicate_name_is_refused():
    Job.objects.create(**GOOD)
    with pytest.raises(ValidationError) as caught:
        Job.objects.create(**GOOD)
    assert "already exists" in " ".join(caught.value.message_dict["name"])
    assert Job.objects.count() == 1


# Job skips Django's per-save constraint queries because each check constraint has a validator twin.
CONSTRAINT_BREAKERS = {
    "job_engine_known": ({"engine": "nope"}, "engine"),
    "job_schedule_fields_match_type": ({"cron_expression": ""}, "cron_expression"),
    "job_priority_0_to_9": ({"priority": 10}, "priority"),
    "job_max_running_positive": ({"max_running": 0}, "max_running"),
}


@pytest.mark.django_db
def test_every_check_constraint_has_a_validator_that_names_the_field():
    from django.db.models import CheckConstraint

    constraints = {c.name: c for c in Job._meta.constraints if isinstance(c, CheckConstraint)}
    assert set(constraints) == set(CONSTRAINT_BREAKERS), "a new check constraint needs a breaker (and a validator)"
    for name, (overrides, field) in CONSTRAINT_BREAKERS.items():
        with pytest.raises(ValidationError):
            constraints[name].validate(Job, Job(**{**GOOD, **overrides}))  # the case does break the constraint
        with pytest.raises(ValidationError) as caught:
            Job(**{**GOOD, **overrides}).full_clean()
        assert field in caught.value.message_dict, name


@pytest.mark.django_db
def test_bulk_create_refuses_a_taken_or_repeated_name_and_stores_nothing():
    Job.objects.create(**GOOD)
    for batch in ([{**GOOD, "name": "new-one"}, GOOD], [{**GOOD, "name": "twice"}, {**GOOD, "name": "twice"}]):
        with pytest.raises(ValidationError) as caught:
            Job.objects.bulk_create([Job(**fields) for fields in batch])
        assert "already exists" in " ".join(caught.value.message_dict["name"])
    assert list(Job.objects.values_list("name", flat=True)) == ["valid-job"]
    created = Job.objects.bulk_create([Job(**{**GOOD, "name": f"bulk-{i}"}) for i in range(3)])
    assert len(created) == 3 and Job.objects.count() == 4


@pytest.mark.django_db
def test_bulk_update_may_keep_a_name_but_not_take_another_jobs():
    first = Job.objects.create(**GOOD)
    second = Job.objects.create(**{**GOOD, "name": "second"})
    first.description = "kept its own name"
    assert Job.objects.bulk_update([first], ["description"]) == 1
    stored = Job.objects.get(pk=first.pk)
    assert stored.description == "kept its own name" and stored.updated_at > second.updated_at  # engines see it
    second.name = first.name
    with pytest.raises(ValidationError) as caught:
        Job.objects.bulk_update([second], ["name"])
    assert "already exists" in " ".join(caught.value.message_dict["name"])
    assert Job.objects.get(pk=second.pk).name == "second"


@pytest.mark.django_db
def test_the_good_job_is_accepted_and_other_schedule_fields_are_cleared():
    job = Job.objects.create(**{**GOOD, "interval_seconds": 60, "cron_expression": " */5  *  * * * "})
    job.refresh_from_db()
    assert (job.cron_expression, job.interval_seconds, job.run_at) == ("*/5 * * * *", None, None)


@pytest.mark.django_db
def test_an_existing_one_off_job_keeps_its_past_run_at_when_other_fields_change():
    job = Job.objects.create(**{**GOOD, "schedule_type": "once", "run_at": timezone.now() + dt.timedelta(seconds=60)})
    Job.objects.filter(pk=job.pk).update(run_at=PAST)  # it ran long ago
    job.refresh_from_db()
    job.description = "kept as a record"
    job.save()
    assert Job.objects.get(pk=job.pk).description == "kept as a record"


@pytest.mark.django_db
def test_the_database_constraint_is_the_backstop_for_mixed_schedule_fields():
    from django.db import IntegrityError, transaction

    job = Job.objects.create(**GOOD)
    with pytest.raises(IntegrityError), transaction.atomic():
        Job.objects.filter(pk=job.pk).update(interval_seconds=60)
    assert Job.objects.get(pk=job.pk).interval_seconds is None


KWARGS_CASES = [
    ('{"x": "1", "y": 2}', "x: must be an integer"),
    ('{"x": 1}', "y: missing"),
    ('{"x": 1, "y": 2, "z": 0}', "z: unknown parameter"),
    ("[1, 2]", "--kwargs must be a JSON object"),
    ('{"x": 1,', "--kwargs is not valid JSON"),
    ('{"x": "\\u0000", "y": 2}', "x: may not contain the NUL character"),
    ('{"x": ' + "[" * 1200 + "]" * 1200 + ', "y": 2}', "nested too deeply"),
    ('{"x": ' + "[" * 100_000 + "]" * 100_000 + ', "y": 2}', "nested too deeply"),
    ('{"x": 1, "y": 2, "pad": "' + "x" * 70_000 + '"}', "too large"),
    ('{"x": 1' + "0" * 5000 + ', "y": 2}', "--kwargs is not valid JSON"),
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kwargs, fragment", KWARGS_CASES)
def test_run_job_refuses_bad_kwargs_with_one_line_and_runs_nothing(kwargs, fragment):
    Job.objects.create(**GOOD)
    with pytest.raises(CommandError) as caught:
        call_command("run_job", GOOD["name"], "--kwargs", kwargs)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)
    assert JobRun.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_run_job_of_an_unknown_job_is_one_line():
    with pytest.raises(CommandError, match="no job named 'ghost'"):
        call_command("run_job", "ghost")


@pytest.mark.django_db(transaction=True)
def test_run_job_prints_the_result_and_records_the_run(capsys):
    Job.objects.create(**GOOD)
    call_command("run_job", GOOD["name"], "--kwargs", '{"x": 20, "y": 22}')
    assert json.loads(capsys.readouterr().out) == 42
    run = JobRun.objects.get()
    assert (run.trigger, run.status, run.kwargs) == ("run_now", "succeeded", {"x": 20, "y": 22})
    assert run.requested_by.startswith("manage.py run_job")  # who asked, in the run's history


def run_job_process(*args, **env):
    """``manage.py run_job ARGS`` in a fresh process on the test database, as a person runs it."""
    from django.db import connection

    from tests.helpers import clean_env, manage
    from tests.services import POSTGRES_URL

    name = connection.settings_dict["NAME"]  # a file on the SQLite fallback (tests/settings.py)
    database = f"sqlite:///{name}" if connection.vendor == "sqlite" else POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    return manage("run_job", *args, env=clean_env(SECRET_KEY="k", DATABASE_URL=database, **env))


@pytest.mark.django_db(transaction=True)
def test_run_job_exits_1_with_exactly_one_line_when_the_handler_fails(tmp_path):
    Job.objects.create(**{**GOOD, "handler": "fail", "kwargs": {"message": "upstream is down"}, "max_retries": 0})
    log_file = tmp_path / "taskhub.log"
    result = run_job_process(GOOD["name"], TASKHUB_LOG_FILE=str(log_file))
    assert result.returncode == 1
    run = JobRun.objects.get()
    assert (result.stdout, result.stderr) == (
        "",
        f"CommandError: run {run.pk} failed: RuntimeError: upstream is down\n",
    )
    # The run's own records still reach the log file, and its history keeps the traceback.
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [r["message"] for r in records if r.get("run") == run.pk] == ["run failed"]
    assert "Traceback" in run.error


@pytest.mark.django_db(transaction=True)
def test_run_job_prints_only_the_result_and_shows_the_runs_logs_with_verbosity_2():
    Job.objects.create(**GOOD)
    quiet, verbose = run_job_process(GOOD["name"]), run_job_process(GOOD["name"], "-v", "2")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "3\n", "")
    assert verbose.stdout == "3\n"
    assert [json.loads(line)["message"] for line in verbose.stderr.splitlines()] == ["number_sum"]
