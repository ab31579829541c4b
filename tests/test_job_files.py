"""Jobs as files: export_jobs and import_jobs round-trip, idempotence, dry run, prune, all or nothing, bad files."""

import datetime as dt
import io
import json

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks_app.models import Job, changes
from tasks_app.models.job_files import FILE_FIELDS, JobFileError, import_rows, parse
from tests.factories import job_factory
from tests.helpers import clean_env, manage

pytestmark = pytest.mark.django_db


def export(*args) -> str:
    out = io.StringIO()
    call_command("export_jobs", *args, stdout=out)
    return out.getvalue()


def import_file(tmp_path, text: str, *args) -> list[str]:
    path = tmp_path / "jobs.txt"
    path.write_text(text)
    out = io.StringIO()
    call_command("import_jobs", str(path), *args, stdout=out, stderr=out)
    return out.getvalue().splitlines()


def import_refused(tmp_path, text: str, *args) -> tuple[str, list[str]]:
    path = tmp_path / "jobs.txt"
    path.write_text(text)
    err = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("import_jobs", str(path), *args, stdout=io.StringIO(), stderr=err)
    return str(caught.value), err.getvalue().splitlines()


def snapshot() -> list[dict]:
    return list(Job.objects.order_by("name").values(*FILE_FIELDS))


def a_few_jobs():
    job_factory(name="b-nightly", schedule_type="cron", cron_expression="0 3 * * *", timezone="Europe/Paris")
    job_factory(name="a-every-minute", interval_seconds=60, engine="celery", priority=2, alert_emails="x@example.com")
    job_factory(
        name="c-once",
        schedule_type="once",
        run_at=timezone.now() + dt.timedelta(days=3),
        kwargs={"x": 5, "y": -1},
        description="Ünïcode and a\nsecond line",
        retry_backoff_seconds=2.5,
        enabled=False,
    )


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_export_then_import_into_an_empty_database_exports_the_same_bytes(tmp_path, fmt):
    a_few_jobs()
    first = export("--format", fmt)
    before = snapshot()
    Job.objects.all().delete()
    lines = import_file(tmp_path, first)
    assert lines[:3] == ["created job 'a-every-minute'", "created job 'b-nightly'", "created job 'c-once'"]
    assert export("--format", fmt) == first
    assert snapshot() == before


def test_the_file_is_sorted_by_name_in_the_models_field_order_without_ids():
    a_few_jobs()
    rows = json.loads(export())
    assert [row["name"] for row in rows] == ["a-every-minute", "b-nightly", "c-once"]
    assert all(list(row) == list(FILE_FIELDS) for row in rows)
    assert not {"id", "created_at", "updated_at", "declared_in_code"} & set(rows[0])
    assert {"alert_after_failures", "alert_when_overdue", "alert_emails", "cron_expression"} <= set(rows[0])
    assert rows[2]["run_at"].endswith("+00:00")


def test_export_names_only_the_named_jobs_and_refuses_an_unknown_one():
    a_few_jobs()
    assert [row["name"] for row in yaml.safe_load(export("--format", "yaml", "c-once", "b-nightly"))] == [
        "b-nightly",
        "c-once",
    ]
    with pytest.raises(CommandError, match=r"^no job named 'nope'$"):
        export("b-nightly", "nope")


def test_a_second_import_says_no_changes_and_a_change_names_its_fields(tmp_path):
    a_few_jobs()
    text = export()
    assert import_file(tmp_path, text) == ["no changes (3 job(s) unchanged)"]
    rows = json.loads(text)
    rows[1].update(cron_expression="30  4 * * *", enabled=False)  # extra spaces: stored normalized
    stamp = Job.objects.get(name="b-nightly").updated_at
    lines = import_file(tmp_path, json.dumps(rows))
    assert lines == ["changed job 'b-nightly': cron_expression, enabled", "0 created, 1 changed, 2 unchanged, 0 paused"]
    job = Job.objects.get(name="b-nightly")
    assert (job.cron_expression, job.enabled) == ("30 4 * * *", False) and job.updated_at > stamp
    assert import_file(tmp_path, json.dumps(rows)) == ["no changes (3 job(s) unchanged)"]


def test_dry_run_says_what_it_would_do_and_changes_nothing(tmp_path):
    a_few_jobs()
    rows = json.loads(export())
    rows[0]["priority"] = 9
    rows.append({**rows[0], "name": "d-new"})
    before = snapshot()
    lines = import_file(tmp_path, json.dumps(rows[:1] + rows[3:]), "--dry-run", "--prune")
    assert lines == [
        "would create job 'd-new'",
        "would change job 'a-every-minute': priority",
        "would pause job 'b-nightly' (not in the file)",
        "dry run, nothing changed: 1 created, 1 changed, 0 unchanged, 1 paused",
    ]
    assert snapshot() == before


def test_an_import_tells_the_engines_and_a_dry_run_does_not(tmp_path):
    job_factory(name="a-job")
    rows = json.loads(export())
    rows[0]["priority"] = 3
    before = changes.version()
    import_file(tmp_path, json.dumps(rows), "--dry-run")
    assert changes.version() == before
    import_file(tmp_path, json.dumps(rows))
    assert changes.version() > before


def test_prune_pauses_the_enabled_jobs_not_in_the_file_and_deletes_nothing(tmp_path):
    a_few_jobs()
    rows = json.loads(export("a-every-minute"))
    lines = import_file(tmp_path, json.dumps(rows), "--prune")
    assert lines == ["paused job 'b-nightly' (not in the file)", "0 created, 0 changed, 1 unchanged, 1 paused"]
    assert dict(Job.objects.values_list("name", "enabled")) == {
        "a-every-minute": True,
        "b-nightly": False,
        "c-once": False,
    }


def test_one_bad_job_changes_nothing_and_every_error_is_a_line(tmp_path):
    a_few_jobs()
    rows = json.loads(export())
    rows[0]["priority"] = 1  # a good change, rolled back with the rest
    rows.append({"name": "bad-one", "handler": "nope", "schedule_type": "cron", "cron_expression": "61 * * * *"})
    rows.append(
        {
            "name": "bad-two",
            "handler": "number_sum",
            "kwargs": {"x": "1", "y": 2},
            "schedule_type": "interval",
            "interval_seconds": -5,
        }
    )
    before = snapshot()
    message, lines = import_refused(tmp_path, json.dumps(rows), "--prune")
    assert message == "nothing changed: 4 problems"
    assert len(lines) == 4 and all(line.startswith(("job 'bad-one': ", "job 'bad-two': ")) for line in lines)
    assert any(line.startswith("job 'bad-one': handler: Unknown handler 'nope'") for line in lines)
    assert any(line.startswith("job 'bad-one': cron_expression: ") for line in lines)
    assert any(line.startswith("job 'bad-two': interval_seconds: ") for line in lines)
    assert any(line.startswith("job 'bad-two': kwargs: ") for line in lines)
    assert snapshot() == before


@pytest.mark.parametrize(
    "field, value, line",
    [
        ("run_at", False, "job 'x': run_at: Enter a date and time (got a bool)."),
        ("run_at", "soon", "job 'x': run_at: “soon” value has an invalid format."),
        ("timezone", {"zone": "UTC"}, "job 'x': timezone: Enter text (got a dict)."),
        ("cron_expression", ["0", "3"], "job 'x': cron_expression: Enter text (got a list)."),
        ("alert_emails", 5, "job 'x': alert_emails: Enter text (got an int)."),
    ],
)
def test_a_value_of_the_wrong_type_is_a_field_error_not_a_traceback(tmp_path, field, value, line):
    row = {"name": "x", "handler": "number_sum", "kwargs": {"x": 1, "y": 2}, "schedule_type": "once", field: value}
    message, _ = import_refused(tmp_path, json.dumps([row]))
    assert message.startswith(line) and Job.objects.count() == 0


BAD_FILES = [
    ("{not json: [", "not JSON or YAML"),
    ('{"name": "x"}', "expected a list of jobs, got a dict"),
    ("", "expected a list of jobs, got nothing"),
    ('["x"]', "job #1: expected a mapping of fields, got a str"),
    ('[{"handler": "number_sum"}]', "job #1: no name"),
    ('[{"name": "x", "colour": "red"}]', "job 'x': unknown field 'colour'"),
    ('[{"name": "x", "id": 3}]', "job 'x': unknown field 'id'"),
    ('[{"name": "x"}, {"name": "x"}]', "job 'x': named twice in the file"),
]


@pytest.mark.parametrize("text, fragment", BAD_FILES)
def test_a_bad_file_is_one_line_and_changes_nothing(tmp_path, text, fragment):
    a_few_jobs()
    before = snapshot()
    message, lines = import_refused(tmp_path, text)
    assert message.startswith(fragment) and message.endswith("(nothing changed)") and "\n" not in message
    assert lines == [] and snapshot() == before


def test_a_missing_file_is_one_line(tmp_path):
    with pytest.raises(CommandError, match=r"^cannot read .*nope.json: No such file or directory$"):
        call_command("import_jobs", str(tmp_path / "nope.json"))


def test_dash_reads_stdin(monkeypatch):
    job_factory(name="from-stdin")
    text = export()
    Job.objects.all().delete()
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    out = io.StringIO()
    call_command("import_jobs", "-", stdout=out)
    assert out.getvalue().splitlines()[0] == "created job 'from-stdin'"
    assert export() == text


names = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True)
valid_jobs = st.fixed_dictionaries(
    {
        "handler": st.just("number_sum"),
        "kwargs": st.fixed_dictionaries({"x": st.integers(-(10**6), 10**6), "y": st.integers(-(10**6), 10**6)}),
        "description": st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=30),
        "engine": st.sampled_from(["celery", "apscheduler"]),
        "priority": st.integers(0, 9),
        "enabled": st.booleans(),
        "timezone": st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"]),
        "retry_backoff_seconds": st.none() | st.floats(0, 1e6, allow_nan=False),
        "alert_after_failures": st.integers(0, 1000),
        "alert_when_overdue": st.booleans(),
        "alert_emails": st.lists(st.sampled_from(["ops@example.com", "a.b@example.org"]), max_size=2, unique=True),
        "queue": st.sampled_from(["default", "slow.io"]),
        "timeout_seconds": st.none() | st.integers(1, 10**6),
        "max_retries": st.none() | st.integers(0, 100),
        "jitter_seconds": st.integers(0, 3600),
        "misfire_grace_seconds": st.integers(0, 10**6),
        "coalesce": st.booleans(),
        "max_running": st.integers(1, 50),
    },
)
schedules = st.one_of(
    st.fixed_dictionaries({"schedule_type": st.just("interval"), "interval_seconds": st.integers(1, 365 * 24 * 3600)}),
    st.fixed_dictionaries(
        {
            "schedule_type": st.just("cron"),
            "cron_expression": st.sampled_from(["* * * * *", "0 3 * * 1-5", "*/7 2 1 * *"]),
        }
    ),
    st.fixed_dictionaries(
        {"schedule_type": st.just("once"), "minutes": st.integers(10, 10**6), "micro": st.integers(0, 999_999)}
    ),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.dictionaries(names, st.tuples(valid_jobs, schedules), min_size=1, max_size=4),
    st.sampled_from(["json", "yaml"]),
)
def test_any_valid_jobs_round_trip_to_the_same_bytes(tmp_path, jobs, fmt):
    Job.objects.all().delete()
    for name, (fields, schedule) in jobs.items():
        schedule = dict(schedule)
        if schedule["schedule_type"] == "once":
            minutes, micro = schedule.pop("minutes"), schedule.pop("micro")
            schedule["run_at"] = timezone.now() + dt.timedelta(minutes=minutes, microseconds=micro)
        Job.objects.create(name=name, **fields, **schedule)
    first, before = export("--format", fmt), snapshot()
    Job.objects.all().delete()
    import_file(tmp_path, first)
    assert export("--format", fmt) == first and snapshot() == before
    assert import_file(tmp_path, first) == [f"no changes ({len(jobs)} job(s) unchanged)"]


@pytest.mark.django_db(False)
def test_as_a_process_stdin_in_exit_status_and_one_line_out(tmp_path):
    env = clean_env(SECRET_KEY="k", DATABASE_URL=f"sqlite:///{tmp_path / 'jobs.sqlite3'}")
    assert manage("migrate", "-v0", env=env).returncode == 0
    text = json.dumps(
        [{"name": "nightly", "handler": "number_sum", "kwargs": {"x": 1, "y": 2}, "cron_expression": "0 3 * * *"}]
    )
    created = manage("import_jobs", "-", env=env, input=text)
    assert (created.returncode, created.stdout.splitlines()[0]) == (0, "created job 'nightly'")
    exported = manage("export_jobs", "--format", "yaml", env=env)
    assert exported.returncode == 0 and yaml.safe_load(exported.stdout)[0]["cron_expression"] == "0 3 * * *"
    again = manage("import_jobs", "-", env=env, input=exported.stdout)
    assert (again.returncode, again.stdout) == (0, "no changes (1 job(s) unchanged)\n")
    for args, stdin in ((["import_jobs", "-"], "[1, 2"), (["export_jobs", "nope"], None)):
        refused = manage(*args, env=env, input=stdin)
        assert refused.returncode == 1 and len(refused.stderr.splitlines()) == 1, refused.stderr
        assert "Traceback" not in refused.stderr and refused.stdout == ""


scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
job_like = st.dictionaries(
    st.sampled_from(FILE_FIELDS), json_values | st.sampled_from(["number_sum", "cron", "once", "0 3 * * *", "UTC"])
)


@settings(max_examples=60, deadline=None)
@given(
    json_values
    | st.lists(job_like, max_size=3)
    | st.lists(st.builds(lambda name, rest: {**rest, "name": name}, names, job_like), max_size=3)
)
def test_any_data_is_applied_or_refused_in_lines_and_a_refusal_changes_nothing(data):
    Job.objects.all().delete()
    job_factory(name="there")
    before = snapshot()
    try:
        import_rows(parse(json.dumps(data)))
    except JobFileError as exc:
        assert exc.lines and all(line and "\n" not in line for line in exc.lines)
        assert snapshot() == before
