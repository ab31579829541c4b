"""The slot function: exact fire instants (UTC literals worked out by hand) and the DST rules.

Amsterdam: CET = UTC+1, CEST = UTC+2; 2027-03-28 01:00 UTC clocks jump 02:00 -> 03:00,
2027-10-31 01:00 UTC they fall back 03:00 -> 02:00. New York: EST = UTC-5, EDT = UTC-4;
2027-03-14 07:00 UTC 02:00 -> 03:00, 2027-11-07 06:00 UTC 02:00 -> 01:00.
Lord Howe: +10:30 / +11:00, a half-hour change (2027-04-04 back, 2027-10-03 forward).
"""

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from tasks_app.scheduling.slots import (
    ScheduleError,
    cron_fire_times,
    fire_times,
    interval_fire_times,
    once_fire_times,
    slot_at,
    validate_cron,
    validate_timezone,
)

AMS, NYC, LHI = "Europe/Amsterdam", "America/New_York", "Australia/Lord_Howe"


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local_dates(instants, zone):
    return [i.astimezone(ZoneInfo(zone)).date().isoformat() for i in instants]


# --- cron: fixed-hour jobs across DST --------------------------------------------------


def test_fixed_hour_job_in_spring_gap_fires_once_at_end_of_gap():
    fires = cron_fire_times("30 2 * * *", AMS, utc(2027, 3, 25, 12), 5)
    assert fires == [
        utc(2027, 3, 26, 1, 30),
        utc(2027, 3, 27, 1, 30),
        utc(2027, 3, 28, 1, 0),
        utc(2027, 3, 29, 0, 30),
        utc(2027, 3, 30, 0, 30),
    ]
    assert local_dates(fires, AMS) == ["2027-03-26", "2027-03-27", "2027-03-28", "2027-03-29", "2027-03-30"]


def test_fixed_hour_job_in_fall_back_fires_once_at_first_occurrence():
    fires = cron_fire_times("30 2 * * *", AMS, utc(2027, 10, 28, 12), 5)
    assert fires == [
        utc(2027, 10, 29, 0, 30),
        utc(2027, 10, 30, 0, 30),
        utc(2027, 10, 31, 0, 30),
        utc(2027, 11, 1, 1, 30),
        utc(2027, 11, 2, 1, 30),
    ]
    assert local_dates(fires, AMS) == ["2027-10-29", "2027-10-30", "2027-10-31", "2027-11-01", "2027-11-02"]


def test_several_gap_times_of_one_job_fire_once():
    assert cron_fire_times("0,30 2 * * *", AMS, utc(2027, 3, 27, 12), 3) == [
        utc(2027, 3, 28, 1, 0),
        utc(2027, 3, 29, 0, 0),
        utc(2027, 3, 29, 0, 30),
    ]
    # 03:00 exists and is the end of the gap: the swallowed 02:00 and 02:30 join it.
    assert cron_fire_times("0,30 2-3 * * *", AMS, utc(2027, 3, 27, 12), 3) == [
        utc(2027, 3, 28, 1, 0),
        utc(2027, 3, 28, 1, 30),
        utc(2027, 3, 29, 0, 0),
    ]


def test_fixed_hour_list_and_range_fire_only_first_repeated_times():
    assert cron_fire_times("0,30 2 * * *", AMS, utc(2027, 10, 30, 12), 3) == [
        utc(2027, 10, 31, 0, 0),
        utc(2027, 10, 31, 0, 30),
        utc(2027, 11, 1, 1, 0),
    ]
    assert cron_fire_times("15 2,14 * * *", AMS, utc(2027, 10, 30, 12), 3) == [
        utc(2027, 10, 30, 12, 15),
        utc(2027, 10, 31, 0, 15),
        utc(2027, 10, 31, 13, 15),
    ]


def test_after_in_another_zone_and_on_the_gap_fire():
    after = datetime(2027, 3, 28, 3, 0, tzinfo=ZoneInfo(AMS))  # = 01:00 UTC, the gap fire itself
    assert cron_fire_times("30 2 * * *", AMS, after, 1) == [utc(2027, 3, 29, 0, 30)]
    after = datetime(2027, 3, 28, 6, 29, 59, 999999, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    assert cron_fire_times("30 2 * * *", AMS, after, 1) == [utc(2027, 3, 28, 1, 0)]


# --- cron: wildcard-hour jobs follow real time -----------------------------------------


def test_hourly_job_fires_every_real_hour_on_fall_back_night():
    fires = cron_fire_times("0 * * * *", AMS, utc(2027, 10, 30, 21, 59), 26)
    assert fires == [utc(2027, 10, 30, 22) + timedelta(hours=k) for k in range(26)]
    assert utc(2027, 10, 31, 0) in fires and utc(2027, 10, 31, 1) in fires  # both 02:00s
    assert local_dates(fires, AMS).count("2027-10-31") == 25


def test_half_hourly_job_fires_every_real_half_hour_on_fall_back_night():
    fires = cron_fire_times("*/30 * * * *", AMS, utc(2027, 10, 30, 21, 59), 51)
    assert fires == [utc(2027, 10, 30, 22) + timedelta(minutes=30 * k) for k in range(51)]
    assert local_dates(fires, AMS).count("2027-10-31") == 50


def test_hourly_job_has_23_fires_on_spring_forward_day():
    fires = cron_fire_times("0 * * * *", AMS, utc(2027, 3, 27, 22, 59), 24)
    assert fires == [utc(2027, 3, 27, 23) + timedelta(hours=k) for k in range(24)]
    assert local_dates(fires, AMS).count("2027-03-28") == 23
    fires = cron_fire_times("*/30 * * * *", AMS, utc(2027, 3, 28, 0, 0), 3)
    assert fires == [utc(2027, 3, 28, 0, 30), utc(2027, 3, 28, 1, 0), utc(2027, 3, 28, 1, 30)]


def test_after_inside_the_repeated_hour_still_sees_its_second_pass():
    # after = 02:30 CEST; 02:15 CET (01:15 UTC) is later in real time though earlier on the wall.
    assert cron_fire_times("15 * * * *", AMS, utc(2027, 10, 31, 0, 30), 2) == [
        utc(2027, 10, 31, 1, 15),
        utc(2027, 10, 31, 2, 15),
    ]


def test_step_in_hour_field_follows_real_time():
    assert cron_fire_times("0 0/2 * * *", AMS, utc(2027, 3, 27, 22), 3) == [
        utc(2027, 3, 27, 23),
        utc(2027, 3, 28, 2),
        utc(2027, 3, 28, 4),
    ]  # 00:00 CET, 04:00 and 06:00 CEST
    assert cron_fire_times("0 0/2 * * *", AMS, utc(2027, 10, 30, 21), 4) == [
        utc(2027, 10, 30, 22),
        utc(2027, 10, 31, 0),
        utc(2027, 10, 31, 1),
        utc(2027, 10, 31, 3),
    ]  # both 02:00s


def test_wildcard_hour_job_skips_times_that_do_not_exist():
    assert cron_fire_times("30 * * * *", AMS, utc(2027, 3, 27, 23), 3) == [
        utc(2027, 3, 27, 23, 30),
        utc(2027, 3, 28, 0, 30),
        utc(2027, 3, 28, 1, 30),
    ]  # no 02:30 local
    assert cron_fire_times("0 */2 * * *", AMS, utc(2027, 3, 27, 22), 3) == [
        utc(2027, 3, 27, 23),
        utc(2027, 3, 28, 2),
        utc(2027, 3, 28, 4),
    ]  # 00:00, 04:00, 06:00 local


# --- cron: a second zone, UTC, weekdays, day-of-month OR day-of-week --------------------


def test_new_york_fixed_hour_jobs():
    assert cron_fire_times("30 2 * * *", NYC, utc(2027, 3, 13), 3) == [
        utc(2027, 3, 13, 7, 30),
        utc(2027, 3, 14, 7, 0),
        utc(2027, 3, 15, 6, 30),
    ]
    assert cron_fire_times("30 1 * * *", NYC, utc(2027, 11, 6), 3) == [
        utc(2027, 11, 6, 5, 30),
        utc(2027, 11, 7, 5, 30),
        utc(2027, 11, 8, 6, 30),
    ]


def test_new_york_wildcard_hour_jobs():
    assert cron_fire_times("15 * * * *", NYC, utc(2027, 11, 7, 4, 30), 3) == [
        utc(2027, 11, 7, 5, 15),
        utc(2027, 11, 7, 6, 15),
        utc(2027, 11, 7, 7, 15),
    ]  # 01:15 EDT, 01:15 EST, 02:15 EST
    fires = cron_fire_times("0 * * * *", NYC, utc(2027, 11, 7, 3, 59), 26)
    assert local_dates(fires, NYC).count("2027-11-07") == 25
    fires = cron_fire_times("0 * * * *", NYC, utc(2027, 3, 14, 4, 59), 24)
    assert local_dates(fires, NYC).count("2027-03-14") == 23


def test_weekday_job_in_utc_and_new_york():
    assert cron_fire_times("0 9 * * MON-FRI", "UTC", utc(2027, 1, 1), 4) == [
        utc(2027, 1, 1, 9),
        utc(2027, 1, 4, 9),
        utc(2027, 1, 5, 9),
        utc(2027, 1, 6, 9),
    ]  # Fri, Mon, Tue, Wed
    assert cron_fire_times("0 9 * * MON-FRI", NYC, utc(2027, 3, 12), 2) == [
        utc(2027, 3, 12, 14),
        utc(2027, 3, 15, 13),
    ]  # 09:00 EST Friday, 09:00 EDT Monday


def test_day_of_month_or_day_of_week():
    assert cron_fire_times("0 0 1 * MON", "UTC", utc(2027, 3, 25), 4) == [
        utc(2027, 3, 29),
        utc(2027, 4, 1),
        utc(2027, 4, 5),
        utc(2027, 4, 12),
    ]  # Mon, Thu 1st, Mon, Mon


def test_sparse_leap_day_job():
    assert cron_fire_times("0 0 29 2 *", "UTC", utc(2027, 1, 1), 3) == [
        utc(2028, 2, 29),
        utc(2032, 2, 29),
        utc(2036, 2, 29),
    ]
    assert cron_fire_times("0 0 29 2 *", AMS, utc(2097, 1, 1), 1) == [utc(2104, 2, 28, 23)]  # 2100 is no leap year


def test_half_hour_dst_zone():
    # 02:00 +10:30 = 15:30 UTC the day before; on 2027-10-03 02:00 and 02:15 fall in the gap (02:30 +11:00).
    assert cron_fire_times("0,15 2 * * *", LHI, utc(2027, 10, 1), 4) == [
        utc(2027, 10, 1, 15, 30),
        utc(2027, 10, 1, 15, 45),
        utc(2027, 10, 2, 15, 30),
        utc(2027, 10, 3, 15, 0),
    ]


def test_cron_results_are_utc_and_whole_seconds():
    for fire in cron_fire_times("*/7 * * * *", NYC, utc(2027, 11, 7, 5, 0, 3, 500), 20):
        assert fire.tzinfo is UTC and fire.second == 0 and fire.microsecond == 0


# --- interval and once ------------------------------------------------------------------


def test_interval_ticks_are_anchored_at_the_epoch():
    assert interval_fire_times(90, utc(1970, 1, 1), 3) == [
        utc(1970, 1, 1, 0, 1, 30),
        utc(1970, 1, 1, 0, 3),
        utc(1970, 1, 1, 0, 4, 30),
    ]
    assert interval_fire_times(90, utc(2027, 3, 5, 10, 0, 1), 2) == [utc(2027, 3, 5, 10, 1, 30), utc(2027, 3, 5, 10, 3)]
    assert interval_fire_times(3600, utc(2027, 3, 5, 10, 0, 0, 500000), 2) == [utc(2027, 3, 5, 11), utc(2027, 3, 5, 12)]
    assert interval_fire_times(7 * 86400, utc(2027, 1, 5, 12), 3) == [
        utc(2027, 1, 7),
        utc(2027, 1, 14),
        utc(2027, 1, 21),
    ]  # the epoch was a Thursday


@pytest.mark.parametrize(
    "after",
    [
        utc(2027, 3, 5, 10, 0, 0, 1),
        utc(2027, 3, 5, 10, 0, 45),
        utc(2027, 3, 5, 10, 1, 29, 999999),
        datetime(2027, 3, 5, 11, 1, 0, tzinfo=ZoneInfo(AMS)),
        datetime(2027, 3, 5, 5, 0, 30, tzinfo=ZoneInfo(NYC)),
    ],
)
def test_interval_next_tick_does_not_depend_on_after(after):
    assert interval_fire_times(90, after, 1) == [utc(2027, 3, 5, 10, 1, 30)]


def test_interval_after_exactly_on_a_tick_gives_the_next_one():
    assert interval_fire_times(90, utc(2027, 3, 5, 10, 1, 30), 1) == [utc(2027, 3, 5, 10, 3)]
    assert interval_fire_times(3600, utc(2027, 3, 5, 10), 1) == [utc(2027, 3, 5, 11)]


@pytest.mark.parametrize("seconds", [0, -5, True, 1.5, None, "60"])
def test_interval_must_be_whole_seconds_at_least_one(seconds):
    with pytest.raises(ScheduleError, match="interval must be a whole number of seconds >= 1"):
        interval_fire_times(seconds, utc(2027, 1, 1), 1)


def test_once_fires_only_if_run_at_is_later():
    run_at = datetime(2027, 6, 1, 12, 0, 0, 250, tzinfo=ZoneInfo(AMS))
    assert once_fire_times(run_at, utc(2027, 6, 1, 9, 59), 5) == [utc(2027, 6, 1, 10, 0, 0, 250)]
    assert once_fire_times(run_at, run_at, 1) == []
    assert once_fire_times(run_at, utc(2027, 6, 2), 1) == []
    assert once_fire_times(run_at, utc(2027, 6, 1), 0) == []
    assert once_fire_times(run_at, utc(2027, 6, 1), 1)[0].tzinfo is UTC


# --- dispatch and bad input ---------------------------------------------------------------


def test_fire_times_dispatches_on_schedule_type():
    after = utc(2027, 3, 27, 12)
    assert fire_times("cron", cron_expression="30 2 * * *", timezone=AMS, after=after, count=1) == [utc(2027, 3, 28, 1)]
    assert fire_times("interval", interval_seconds=3600, after=after, count=1) == [utc(2027, 3, 27, 13)]
    assert fire_times("once", run_at=utc(2027, 4, 1), after=after, count=1) == [utc(2027, 4, 1)]
    assert fire_times("cron", cron_expression="0 0 * * *", after=after, count=1) == [utc(2027, 3, 28)]
    with pytest.raises(ScheduleError, match="unknown schedule type 'weekly'"):
        fire_times("weekly", after=after, count=1)


@pytest.mark.parametrize("count", [0, -1])
def test_no_count_no_fires(count):
    after = utc(2027, 1, 1)
    assert cron_fire_times("* * * * *", "UTC", after, count) == []
    assert interval_fire_times(60, after, count) == []
    assert fire_times("once", run_at=utc(2028, 1, 1), after=after, count=count) == []


def test_naive_datetimes_are_refused():
    naive = datetime(2027, 1, 1)
    with pytest.raises(ScheduleError, match="after must be timezone-aware"):
        cron_fire_times("* * * * *", "UTC", naive, 1)
    with pytest.raises(ScheduleError, match="after must be timezone-aware"):
        interval_fire_times(60, naive, 1)
    with pytest.raises(ScheduleError, match="run_at must be timezone-aware"):
        once_fire_times(naive, utc(2027, 1, 1), 1)
    with pytest.raises(ScheduleError, match="at must be timezone-aware"):
        slot_at("interval", interval_seconds=60, at=naive)


# --- slot_at ---------------------------------------------------------------------------------


def test_slot_at_interval_and_once():
    assert slot_at("interval", interval_seconds=90, at=utc(2027, 3, 5, 10, 1, 30)) == utc(2027, 3, 5, 10, 1, 30)
    assert slot_at("interval", interval_seconds=90, at=utc(2027, 3, 5, 10, 1, 30, 4000)) == utc(2027, 3, 5, 10, 1, 30)
    assert slot_at("interval", interval_seconds=90, at=utc(2027, 3, 5, 10, 2, 59)) == utc(2027, 3, 5, 10, 1, 30)
    assert slot_at("once", run_at=utc(2027, 4, 1), at=utc(2027, 3, 31, 23, 59)) is None
    assert slot_at("once", run_at=utc(2027, 4, 1), at=utc(2027, 4, 1)) == utc(2027, 4, 1)
    assert slot_at("once", run_at=utc(2027, 4, 1), at=utc(2027, 4, 1, 0, 0, 0, 3000)) == utc(2027, 4, 1)


@pytest.mark.parametrize(
    "expression, zone, at, slot",
    [
        ("30 2 * * *", AMS, utc(2027, 3, 28, 1, 0), utc(2027, 3, 28, 1, 0)),
        ("30 2 * * *", AMS, utc(2027, 3, 28, 1, 0, 0, 3000), utc(2027, 3, 28, 1, 0)),
        ("30 2 * * *", AMS, utc(2027, 3, 28, 0, 59, 59), utc(2027, 3, 27, 1, 30)),
        ("30 2 * * *", AMS, utc(2027, 10, 31, 1, 45), utc(2027, 10, 31, 0, 30)),  # not the second 02:30
        ("0 * * * *", AMS, utc(2027, 10, 31, 1, 0, 0, 40000), utc(2027, 10, 31, 1, 0)),  # the second 02:00
        ("0 * * * *", AMS, utc(2027, 10, 31, 0, 59, 59), utc(2027, 10, 31, 0, 0)),
        ("45 * * * *", AMS, utc(2027, 10, 31, 1, 30), utc(2027, 10, 31, 0, 45)),  # 02:45 CEST, later on the wall
        ("30 * * * *", AMS, utc(2027, 3, 28, 1, 29), utc(2027, 3, 28, 0, 30)),
        ("0 9 * * MON-FRI", "UTC", utc(2027, 1, 4, 8, 59), utc(2027, 1, 1, 9)),
        ("0 0 29 2 *", AMS, utc(2031, 6, 1), utc(2028, 2, 28, 23)),
    ],
)
def test_slot_at_cron(expression, zone, at, slot):
    assert slot_at("cron", cron_expression=expression, timezone=zone, at=at) == slot


def test_two_schedulers_a_few_ms_apart_compute_the_same_slot():
    tick = utc(2027, 10, 31, 1, 0)
    slots = {
        slot_at("cron", cron_expression="*/30 * * * *", timezone=AMS, at=tick + timedelta(milliseconds=ms))
        for ms in (0, 3, 41, 999)
    }
    assert slots == {tick}


@pytest.mark.parametrize("expression", ["30 2 * * *", "0,30 2 * * *", "*/20 * * * *", "45 * * * *", "0 1-3 * * *"])
@pytest.mark.parametrize(
    "zone, around",
    [
        (AMS, utc(2027, 3, 28, 1)),
        (AMS, utc(2027, 10, 31, 1)),
        (NYC, utc(2027, 11, 7, 6)),
        (LHI, utc(2027, 10, 2, 15, 30)),
    ],
)
def test_slot_at_is_the_last_fire_time_at_or_before(expression, zone, around):
    fires = cron_fire_times(expression, zone, around - timedelta(days=2), 400)
    for minutes in range(-180, 181, 7):
        at = around + timedelta(minutes=minutes, seconds=minutes % 3)
        expected = max(f for f in fires if f <= at)
        assert slot_at("cron", cron_expression=expression, timezone=zone, at=at) == expected, at


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression, message",
    [
        ("", "cron expression is empty; expected 5 fields (minute hour day month weekday)"),
        ("   ", "cron expression is empty; expected 5 fields (minute hour day month weekday)"),
        ("0 0 * * * *", "cron expression must have 5 fields (minute hour day month weekday), got 6"),
        ("0 0 * * * * 2027", "cron expression must have 5 fields (minute hour day month weekday), got 7"),
        ("0 0 * *", "cron expression must have 5 fields (minute hour day month weekday), got 4"),
        ("every day at noon", "cron expression must have 5 fields (minute hour day month weekday), got 4"),
        ("@reboot", "cron alias '@reboot' is not supported; write the 5 fields"),
        ("@daily", "cron alias '@daily' is not supported; write the 5 fields, e.g. '0 0 * * *'"),
        ("@hourly", "cron alias '@hourly' is not supported; write the 5 fields, e.g. '0 * * * *'"),
        ("61 * * * *", "cron minute field '61' is invalid (allowed: 0-59)"),
        ("* 24 * * *", "cron hour field '24' is invalid (allowed: 0-23)"),
        ("* * 0 * *", "cron day-of-month field '0' is invalid (allowed: 1-31)"),
        ("* * * 13 *", "cron month field '13' is invalid (allowed: 1-12 or JAN-DEC)"),
        ("* * * * 8", "cron day-of-week field '8' is invalid (allowed: 0-7 or SUN-SAT)"),
        ("*/0 * * * *", "cron minute field '*/0' is invalid (allowed: 0-59)"),
        ("-1 * * * *", "cron minute field '-1' is invalid (allowed: 0-59)"),
        ("a b c d e", "cron minute field 'a' is invalid (allowed: 0-59)"),
        ("0 0 * FOO *", "cron month field 'FOO' is invalid (allowed: 1-12 or JAN-DEC)"),
        ("R * * * *", "cron minute field 'R' is invalid (allowed: 0-59)"),  # random: schedulers would disagree
        ("H * * * *", "cron minute field 'H' is invalid (allowed: 0-59)"),
        ("0 0 31 2 *", "cron expression '0 0 31 2 *' never fires within 10 years"),
        ("* * 30 2 *", "cron expression '* * 30 2 *' never fires within 10 years"),
        ("0 0 31 4,6,9,11 *", "cron expression '0 0 31 4,6,9,11 *' never fires within 10 years"),
    ],
)
def test_invalid_cron_expressions(expression, message):
    with pytest.raises(ScheduleError) as caught:
        validate_cron(expression)
    assert str(caught.value) == message
    if "never fires" in message:  # valid syntax: the slot function says "never" instead of raising
        assert cron_fire_times(expression, "UTC", utc(2027, 1, 1), 1) == []
    else:
        with pytest.raises(ScheduleError):
            cron_fire_times(expression, "UTC", utc(2027, 1, 1), 1)


@pytest.mark.parametrize(
    "expression",
    [
        "*/5 * * * *",
        "0 9 * * MON-FRI",
        "0 0 29 2 *",
        "0 0 31 2 MON",
        "* * * * 7",
        "0 0 * * 0-7",
        "0 0 1 JAN *",
        "15 2,14 * * *",
        "0 1-3 * * *",
        "5-55/10 * * * *",
        "0 0 L * *",
        "0 0 * * 1#2",
        " 0  0 1 * * ",
    ],
)
def test_valid_cron_expressions(expression):
    validate_cron(expression)


def test_sunday_is_0_or_7():
    sundays = [utc(2027, 1, 3), utc(2027, 1, 10)]
    assert cron_fire_times("0 0 * * 7", "UTC", utc(2027, 1, 1), 2) == sundays
    assert cron_fire_times("0 0 * * 0", "UTC", utc(2027, 1, 1), 2) == sundays


@pytest.mark.parametrize("name", ["UTC", AMS, NYC, LHI, "Asia/Kolkata"])
def test_valid_timezones(name):
    assert validate_timezone(name) == ZoneInfo(name)


@pytest.mark.parametrize(
    "name, message",
    [
        ("Mars/Base", "unknown time zone 'Mars/Base'"),
        ("europe/amsterdam", "unknown time zone 'europe/amsterdam'"),
        ("localtime", "unknown time zone 'localtime'"),
        ("../../etc/passwd", "unknown time zone '../../etc/passwd'"),
        ("/etc/localtime", "unknown time zone '/etc/localtime'"),
        ("", "time zone is empty; use an IANA name such as 'Europe/Amsterdam'"),
    ],
)
def test_invalid_timezones(name, message):
    with pytest.raises(ScheduleError) as caught:
        validate_timezone(name)
    assert str(caught.value) == message
    with pytest.raises(ScheduleError):
        cron_fire_times("* * * * *", name, utc(2027, 1, 1), 1)


# --- properties --------------------------------------------------------------------------------

EXPRESSIONS = ["*/15 * * * *", "30 2 * * *", "0,30 1-3 * * *", "0 * * * *", "5 */2 * * 0,6"]
STARTS = {
    AMS: [utc(2027, 3, 27), utc(2027, 10, 30)],
    NYC: [utc(2027, 3, 13), utc(2027, 11, 6)],
    LHI: [utc(2027, 4, 3), utc(2027, 10, 2)],
}


@pytest.mark.parametrize("page_size", [10, 1])
@pytest.mark.parametrize("expression", EXPRESSIONS)
@pytest.mark.parametrize("zone", STARTS)
def test_paging_gives_the_same_increasing_instants(expression, zone, page_size):
    for start in STARTS[zone]:
        whole = cron_fire_times(expression, zone, start, 200)
        paged, after = [], start
        for _ in range(200 // page_size):
            page = cron_fire_times(expression, zone, after, page_size)
            paged, after = paged + page, page[-1]
        assert paged == whole
        assert all(a < b for a, b in zip(whole, whole[1:]))
        assert whole[0] > start


def cron_matcher(expression):
    """A plain classic-cron test of one wall time, from croniter's field expansion only."""
    fields = [None if values == ["*"] else set(values) for values in croniter.expand(expression)[0]]
    minute, hour, dom, month, dow = fields

    def match(wall):
        day_ok = [dom is None or wall.day in dom, dow is None or (wall.weekday() + 1) % 7 in dow]
        day = any(day_ok) if dom is not None and dow is not None else all(day_ok)
        return day and all(
            v is None or x in v for v, x in ((minute, wall.minute), (hour, wall.hour), (month, wall.month))
        )

    return match


def brute_force(expression, zone, start, end):
    """Every real minute in [start, end) that classic cron fires at, walking minute by minute."""
    tz, fixed, match = ZoneInfo(zone), not {"*", "/"} & set(expression.split()[1]), cron_matcher(expression)
    fires, minute = [], timedelta(minutes=1)
    for k in range((end - start) // minute):
        now = start + k * minute
        wall = now.astimezone(tz).replace(tzinfo=None)
        last_wall = (now - minute).astimezone(tz).replace(tzinfo=None)
        swallowed = [last_wall + j * minute for j in range(1, (wall - last_wall) // minute)]  # a gap ends at `now`
        if fixed:
            fires += [now] if (match(wall) and now.astimezone(tz).fold == 0) or any(map(match, swallowed)) else []
        else:
            fires += [now] if match(wall) else []
    return fires


@pytest.mark.parametrize("expression", EXPRESSIONS + ["* 2 * * *", "*/20 1-3 * * *", "10 1-5/2 * * *"])
@pytest.mark.parametrize("zone", STARTS)
def test_fire_times_match_minute_by_minute_cron(expression, zone):
    for start in STARTS[zone]:
        end = start + timedelta(hours=48)
        fires = cron_fire_times(expression, zone, start - timedelta(seconds=1), 400)
        assert [f for f in fires if f < end] == brute_force(expression, zone, start, end)
