"""A schedule's words say what its fire times do, checked against the slot function itself."""

import datetime as dt

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tasks_app.scheduling.describe import describe_cron
from tasks_app.scheduling.slots import ScheduleError, cron_fire_times

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
WINDOW = dt.timedelta(days=2 * 366)


@pytest.mark.parametrize(
    "expression, words",
    [
        ("0 0 29 2 1", "At 00:00, on day 29 of the month, or on Monday, in February"),
        ("0 0 1,15 * MON-FRI", "At 00:00, on day 1 and 15 of the month, or on Monday through Friday"),
        ("0 0 L * 1", "At 00:00, on the last day of the month, or on Monday"),
        ("0 0 13 * 5", "At 00:00, on day 13 of the month, or on Friday"),
        ("0 0 8 * 1#2", "At 00:00, on the second Monday of the month"),  # croniter: the day of month adds nothing
        (
            "0 0 1 * */7",
            "At 00:00, on day 1 of the month, or on Sunday",
        ),  # found by hypothesis: cron-descriptor fails on */7
        ("0 0 29 2 *", "At 00:00, on day 29 of the month, only in February"),
        ("0 0 * * 1", "At 00:00, only on Monday"),
    ],
)
def test_words_of_both_day_fields(expression, words):
    assert describe_cron(expression) == words


def test_the_words_of_the_issue_match_its_fire_times():
    fires = cron_fire_times("0 0 29 2 1", "UTC", START, 20)
    assert {f.month for f in fires} == {2}
    assert dt.datetime(2028, 2, 29, tzinfo=dt.UTC) in fires  # a Tuesday: the day of month alone
    assert all(f.weekday() == 0 or f.day == 29 for f in fires)


# -- words against fires, for random day fields ------------------------------------------------
def field(low: int, high: int):
    """A cron field over low..high and the values it means (or None for '*')."""
    number = st.integers(low, high)
    single = number.map(lambda n: (str(n), {n}))
    many = st.lists(number, min_size=2, max_size=4, unique=True).map(lambda ns: (",".join(map(str, ns)), set(ns)))
    span = (
        st.tuples(number, number)
        .filter(lambda ab: ab[0] < ab[1])
        .map(lambda ab: (f"{ab[0]}-{ab[1]}", set(range(ab[0], ab[1] + 1))))
    )
    step = st.integers(2, 9).map(lambda s: (f"*/{s}", set(range(low, high + 1, s))))
    star = st.just(("*", None))
    return st.one_of(star, single, many, span, step)


def holds(values, value) -> bool:
    return values is None or value in values


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dom=field(1, 31), month=field(1, 12), dow=field(0, 6))
def test_words_and_fire_times_agree_on_how_the_two_day_fields_combine(dom, month, dow):
    expression = f"0 0 {dom[0]} {month[0]} {dow[0]}"
    try:
        fires = cron_fire_times(expression, "UTC", START, 200)
    except ScheduleError:
        assume(False)
    end = min(START + WINDOW, fires[-1] + dt.timedelta(days=1))  # the days all fires were computed for
    days, months, weekdays = dom[1], month[1], dow[1]
    either = ", or " in describe_cron(expression)  # what the words claim

    def claimed(date: dt.date) -> bool:
        cron_weekday = (date.weekday() + 1) % 7  # cron counts from Sunday = 0
        by_day, by_weekday = holds(days, date.day), holds(weekdays, cron_weekday)
        return holds(months, date.month) and ((by_day or by_weekday) if either else (by_day and by_weekday))

    midnights = (START + dt.timedelta(days=n) for n in range(1, (end - START).days + 1))
    assert {m for m in midnights if m < end and claimed(m.date())} == {f for f in fires if f < end}, describe_cron(
        expression
    )
