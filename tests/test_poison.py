"""Poison schedules: what validation accepts fires, the slot function never raises, and a row
that still cannot be scheduled (written past validation) is named and skipped everywhere.

The live engine processes' side of it is in ``test_poison_engines.py``.
"""

import datetime as dt
import json
import time

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tasks_app.engines import request_run
from tasks_app.engines.apscheduler.engine import SlotTrigger
from tasks_app.models import Job, JobRun
from tasks_app.runner import run_requests
from tasks_app.scheduling import slots

AMS, NYC, LHI, KOL = "Europe/Amsterdam", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"
NOW = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)

# Found by the review and by hypothesis: every wall-clock match falls into a DST gap, and the
# step hour means "every real hour", so these never fire; they passed validation before.
NEVER_FIRES = [
    ("30 2/24 * 3 0#5", AMS),
    ("30 2/24 * 3 0#2", NYC),
    ("30 2-3/2 * 3 0#2", NYC),
    ("0 2/24 * 10 0#1", LHI),
    ("45 2/24 * 3 0#2", NYC),
]


@pytest.mark.parametrize("expression, zone", NEVER_FIRES)
def test_a_cron_that_only_matches_inside_dst_gaps_is_refused_by_validation(expression, zone):
    job = Job(
        name="gap",
        handler="number_sum",
        kwargs={"x": 1, "y": 2},
        schedule_type="cron",
        cron_expression=expression,
        timezone=zone,
    )
    with pytest.raises(ValidationError) as caught:
        job.clean()
    assert caught.value.message_dict == {
        "cron_expression": [f"cron expression '{expression}' never fires in {zone} within 10 years"]
    }


@pytest.mark.parametrize("expression, zone", NEVER_FIRES)
def test_the_slot_function_says_never_instead_of_raising(expression, zone):
    started = time.process_time()
    assert slots.cron_fire_times(expression, zone, NOW, 3) == []
    assert list(slots.iter_fire_times("cron", cron_expression=expression, timezone=zone, after=NOW)) == []
    assert slots.slot_at("cron", cron_expression=expression, timezone=zone, at=NOW) is None
    assert time.process_time() - started < 2.0  # was 0.7-9 s of CPU walking to year 9999, then ValueError


def test_the_same_cron_fires_in_a_zone_without_that_gap():
    fires = slots.cron_fire_times("30 2/24 * 3 0#5", "UTC", NOW, 3)
    assert len(fires) == 3 and all(f.month == 3 and f.hour == 2 and f.minute == 30 for f in fires)


def test_a_cron_that_fires_less_than_once_in_ten_years_is_refused():
    # 5th Sunday of February: only when Feb 29 is a Sunday, every 28 years.
    with pytest.raises(slots.ScheduleError, match="fires less than once in 10 years"):
        slots.validate_cron("0 0 * 2 0#5")


@pytest.mark.parametrize(
    "after", [dt.datetime(9999, 12, 31, 23, 59, tzinfo=dt.UTC), dt.datetime(1, 1, 1, 0, 1, tzinfo=dt.UTC)]
)
@pytest.mark.parametrize(
    "schedule",
    [
        {"schedule_type": "cron", "cron_expression": "* * * * *", "timezone": AMS},
        {"schedule_type": "cron", "cron_expression": "0 0 1 1 *", "timezone": "Pacific/Kiritimati"},
        {"schedule_type": "interval", "interval_seconds": 3600},
    ],
)
def test_the_ends_of_the_calendar_have_no_more_fire_times_instead_of_an_error(after, schedule):
    fires = slots.fire_times(**schedule, after=after, count=3)
    assert all(f > after for f in fires)
    slot = slots.slot_at(**schedule, at=after)
    assert slot is None or slot <= after


def test_a_one_off_job_at_the_end_of_year_9999_with_jitter_still_gets_a_fire_time():
    run_at = dt.datetime(9999, 12, 31, 23, 59, tzinfo=dt.UTC)
    trigger = SlotTrigger("once", run_at=run_at, jitter=3600)
    assert trigger.get_next_fire_time(None, NOW) is not None  # was OverflowError in runapscheduler
    assert trigger.get_next_fire_time(None, NOW) >= run_at


# -- property: what validation accepts, the engines' function fires -------------------------
def field(low: int, high: int, names: list[str] = ()):
    number = st.integers(low, high).map(str)
    ranged = st.tuples(st.integers(low, high), st.integers(low, high)).map(lambda r: f"{min(r)}-{max(r)}")
    stepped = st.tuples(
        st.sampled_from(["*", f"{low}", f"{low}-{high}"]) | number | ranged, st.integers(1, high - low + 2)
    ).map(lambda s: f"{s[0]}/{s[1]}")
    single = st.sampled_from(["*"]) | number | ranged | stepped | st.sampled_from(list(names) or ["*"])
    return st.lists(single, min_size=1, max_size=3).map(",".join)


weekday = field(0, 7, ["MON-FRI", "SUN", "6L"]) | st.tuples(st.integers(0, 7), st.integers(1, 5)).map(
    lambda w: f"{w[0]}#{w[1]}"
)
crons = st.tuples(field(0, 59), field(0, 23), field(1, 31, ["L"]), field(1, 12, ["MAR", "OCT-NOV"]), weekday).map(
    " ".join
)
zones = st.sampled_from([AMS, NYC, LHI, KOL])


@pytest.mark.django_db
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expression=crons, zone=zones)
@example(expression="30 2/24 * 3 0#5", zone=AMS)
@example(expression="30 2-3/2 * 3 0#2", zone=NYC)
def test_validation_refuses_or_the_engines_function_gives_three_increasing_fire_times(expression, zone):
    job = Job(
        name="prop",
        handler="number_sum",
        kwargs={"x": 1, "y": 2},
        schedule_type="cron",
        cron_expression=expression,
        timezone=zone,
    )
    try:
        job.full_clean()
    except ValidationError as exc:
        assert set(exc.message_dict) == {"cron_expression"}
        return
    started = time.process_time()
    fires = job.next_fire_times(3)
    assert len(fires) == 3, (expression, zone, fires)
    assert all(f.utcoffset() == dt.timedelta(0) for f in fires)
    assert fires[0] > timezone.now() - dt.timedelta(seconds=1) and fires[0] < fires[1] < fires[2]
    assert job.schedule_problem() is None
    assert time.process_time() - started < 2.0


@settings(max_examples=300, deadline=None)
@given(
    expression=crons | st.text(max_size=30),
    zone=zones | st.text(max_size=20),
    after=st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30), timezones=st.just(dt.UTC)),
)
def test_the_slot_function_returns_or_says_schedule_error_on_any_input(expression, zone, after):
    try:
        fires = slots.cron_fire_times(expression, zone, after, 2)
        slot = slots.slot_at("cron", cron_expression=expression, timezone=zone, at=after)
    except slots.ScheduleError:
        return
    assert fires == sorted(set(fires)) and all(f > after for f in fires)
    assert slot is None or slot <= after


# -- rows written past validation -----------------------------------------------------------
POISON = {
    "unknown zone": ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
    "six fields": ({"cron_expression": "0 0 * * * *"}, "cron expression must have 5 fields"),
    "unknown handler": ({"handler": "renamed_without_alias"}, "handler 'renamed_without_alias' is not registered"),
    "never fires": ({"cron_expression": "30 2/24 * 3 0#5", "timezone": AMS}, "never fires in Europe/Amsterdam"),
}


def poison(job, **fields) -> Job:
    """Write ``fields`` with raw SQL, as a data migration or an older version could."""
    columns = ", ".join(f"{connection.ops.quote_name(name)} = %s" for name in fields)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE tasks_app_job SET {columns} WHERE id = %s", [*fields.values(), job.pk])
    return Job.objects.get(pk=job.pk)


@pytest.fixture
def poisoned(make_job):
    """One enabled poison job of each kind (cron, Celery and APScheduler alike) and a healthy one."""
    jobs = {}
    for index, (kind, (fields, _)) in enumerate(POISON.items()):
        job = make_job(
            name=f"poison-{index}",
            schedule_type="cron",
            cron_expression="0 3 * * *",
            engine=("celery", "apscheduler")[index % 2],
        )
        jobs[kind] = poison(job, **fields)
    jobs["healthy"] = make_job(name="healthy", schedule_type="cron", cron_expression="0 3 * * *")
    return jobs


@pytest.mark.django_db
def test_each_poison_kind_has_its_reason(poisoned):
    for kind, (_, reason) in POISON.items():
        assert reason in poisoned[kind].schedule_problem(), kind
    assert poisoned["healthy"].schedule_problem() is None


@pytest.mark.django_db
def test_the_job_list_names_broken_jobs_and_keeps_serving(admin_client, poisoned):
    response = admin_client.get(reverse("admin:tasks_app_job_changelist"))
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('taskhub-failed" title=') == len(POISON)
    for _, reason in POISON.values():
        assert reason.replace("'", "&#x27;") in html


@pytest.mark.django_db
def test_the_change_page_says_why_a_job_does_not_run(admin_client, poisoned):
    for kind in POISON:
        response = admin_client.get(reverse("admin:tasks_app_job_change", args=[poisoned[kind].pk]))
        assert response.status_code == 200, kind
        assert 'id="job-broken"' in response.content.decode(), kind
    healthy = admin_client.get(reverse("admin:tasks_app_job_change", args=[poisoned["healthy"].pk]))
    assert 'id="job-broken"' not in healthy.content.decode()


@pytest.mark.django_db
def test_the_dashboard_lists_broken_jobs_with_their_reasons(admin_client, poisoned):
    html = admin_client.get(reverse("admin:index")).content.decode()
    panel = html[html.index('id="taskhub-broken"') :]
    panel = panel[: panel.index("</table>")]
    assert f"Broken jobs ({len(POISON)})" in panel
    assert all(poisoned[kind].name in panel for kind in POISON) and "healthy" not in panel


@pytest.mark.django_db
def test_the_dashboard_judges_each_distinct_schedule_once(poisoned, make_job, django_assert_max_num_queries):
    from tasks_app.models import problems

    for n in range(30):
        make_job(name=f"same-{n}", schedule_type="cron", cron_expression="0 3 * * *")
    with django_assert_max_num_queries(3):
        found, count = problems.broken(Job.objects.filter(enabled=True), limit=2)
    assert count == len(POISON) and len(found) == 2


@pytest.mark.django_db
def test_sync_jobs_projects_every_other_job_and_names_the_broken_ones(poisoned, capsys):
    from django_celery_beat.models import PeriodicTask

    call_command("sync_jobs")
    out, err = capsys.readouterr()
    assert f"{len(poisoned) - len(POISON)} job(s) projected" in out
    assert sorted(line.split("'")[1] for line in err.splitlines()) == sorted(poisoned[k].name for k in POISON)
    names = set(PeriodicTask.objects.values_list("name", flat=True))
    assert not any(f":{poisoned[k].name}" in n for k in POISON for n in names)


@pytest.mark.django_db
def test_run_now_of_a_broken_job_is_refused_with_the_reason(poisoned, memory_engines):
    with pytest.raises(run_requests.RunRefused, match="cannot run until it is corrected: handler"):
        request_run(poisoned["unknown handler"])
    assert not poisoned["unknown handler"].runs.exists()
    assert request_run(poisoned["healthy"]).pk


@pytest.mark.django_db
def test_the_job_list_shows_times_of_a_job_in_a_removed_zone_in_utc(admin_client, poisoned):
    JobRun.objects.create(job=poisoned["unknown zone"], engine="celery", scheduled_for=NOW, status="succeeded")
    response = admin_client.get(reverse("admin:tasks_app_job_changelist"))
    assert response.status_code == 200
    assert (
        '<span class="taskhub-nowrap">2026-11-30</span> <span class="taskhub-nowrap">12:00:00 UTC</span>'
        in response.content.decode()
    )


@pytest.mark.django_db(transaction=True)
def test_healthz_names_broken_jobs_without_failing_the_probe(client, poisoned):
    response = client.get("/healthz")
    jobs = json.loads(response.content)["checks"]["jobs"]
    assert response.status_code == 200 and not jobs["required"]
    assert jobs["ok"] is False and jobs["error"].startswith(f"{len(POISON)} enabled job(s) cannot be scheduled")
    Job.objects.filter(pk__in=[poisoned[kind].pk for kind in POISON]).delete()
    assert json.loads(client.get("/healthz").content)["checks"]["jobs"] == {
        "ok": True,
        "broken": 0,
        "required": False,
        "ms": pytest.approx(0, abs=1000),
    }


@pytest.mark.django_db
def test_the_api_refuses_a_broken_job_with_409_and_runs_the_others(poisoned, memory_engines):
    from tasks_app.models import ApiClient
    from tests.test_api import error_of, trigger

    client, client.plain = ApiClient.objects.create_client(name="poison", all_jobs=True)
    for kind in POISON:
        assert "cannot run" in error_of(trigger(poisoned[kind].name, client), 409), kind
    assert not JobRun.objects.filter(job__in=[poisoned[kind] for kind in POISON]).exists()
    assert trigger("healthy", client).status_code == 202
