"""The misfire policy's pure half, ``misfire.plan``: which past-due slots fire and which are skipped, and why.

No database: a job here is an unsaved ``Job`` carrying only the two fields the policy reads.
"""

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from tasks_app.models import Job
from tasks_app.scheduling.misfire import plan

NOW = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)
US = dt.timedelta(microseconds=1)
COALESCED = "coalesced: a later missed slot ran instead"


def policy(grace: int = 300, coalesce: bool = True) -> Job:
    return Job(misfire_grace_seconds=grace, coalesce=coalesce)


def ago(seconds: float) -> dt.datetime:
    return NOW - dt.timedelta(seconds=seconds)


# -- the grace boundary ---------------------------------------------------------------------------
def test_a_slot_exactly_at_the_grace_fires():
    assert plan(policy(grace=300), [ago(300)], NOW) == ([ago(300)], [])


def test_a_slot_one_microsecond_past_the_grace_is_skipped_as_a_misfire():
    late = ago(300) - US
    assert plan(policy(grace=300), [late], NOW) == ([], [(late, "misfire: 300 s late, grace 300 s")])


def test_with_no_grace_only_a_slot_due_this_very_instant_fires():
    assert plan(policy(grace=0), [NOW - US, NOW], NOW) == ([NOW], [(NOW - US, "misfire: 0 s late, grace 0 s")])


def test_the_misfire_reason_says_how_late_and_the_grace():
    fire, skipped = plan(policy(grace=60), [ago(3600)], NOW)
    assert (fire, skipped) == ([], [(ago(3600), "misfire: 3600 s late, grace 60 s")])


# -- coalesce -------------------------------------------------------------------------------------
def test_with_coalesce_only_the_latest_fresh_slot_fires_and_the_others_say_why():
    slots = [ago(900), ago(600), ago(240), ago(120), ago(0)]
    fire, skipped = plan(policy(grace=300, coalesce=True), slots, NOW)
    assert fire == [ago(0)]
    assert skipped == [
        (ago(900), "misfire: 900 s late, grace 300 s"),
        (ago(600), "misfire: 600 s late, grace 300 s"),
        (ago(240), COALESCED),
        (ago(120), COALESCED),
    ]


def test_without_coalesce_every_fresh_slot_fires_in_order():
    slots = [ago(900), ago(240), ago(120), ago(0)]
    fire, skipped = plan(policy(grace=300, coalesce=False), slots, NOW)
    assert fire == [ago(240), ago(120), ago(0)]
    assert skipped == [(ago(900), "misfire: 900 s late, grace 300 s")]


def test_with_coalesce_a_single_fresh_slot_fires_and_nothing_is_coalesced():
    assert plan(policy(coalesce=True), [ago(10)], NOW) == ([ago(10)], [])


def test_with_coalesce_and_every_slot_too_late_nothing_fires():
    fire, skipped = plan(policy(grace=5, coalesce=True), [ago(30), ago(20)], NOW)
    assert fire == [] and [reason.split(":")[0] for _, reason in skipped] == ["misfire", "misfire"]


def test_no_slots_plan_nothing():
    assert plan(policy(coalesce=True), [], NOW) == ([], [])
    assert plan(policy(coalesce=False), [], NOW) == ([], [])


def test_skips_come_out_in_slot_order_whatever_order_the_slots_came_in():
    slots = [ago(100), ago(1000), ago(50), ago(700), ago(10)]
    _, skipped = plan(policy(grace=60, coalesce=True), slots, NOW)
    assert [slot for slot, _ in skipped] == [ago(1000), ago(700), ago(100), ago(50)]


# -- properties -----------------------------------------------------------------------------------
# Slots up to two hours before NOW, to the microsecond; distinct, as a job's slots are.
past_slots = st.lists(st.integers(0, 2 * 3600 * 10**6), unique=True, max_size=30).map(
    lambda offsets: [NOW - dt.timedelta(microseconds=o) for o in offsets]
)
graces = st.integers(0, 3600) | st.sampled_from([0, 1, 300])


@given(slots=past_slots, grace=graces, coalesce=st.booleans())
def test_every_slot_is_fired_or_skipped_exactly_once_and_skips_are_in_order(slots, grace, coalesce):
    fire, skipped = plan(policy(grace, coalesce), slots, NOW)
    accounted = fire + [slot for slot, _ in skipped]
    assert sorted(accounted) == sorted(slots)
    assert [slot for slot, _ in skipped] == sorted(slot for slot, _ in skipped)
    assert all(reason.startswith(("misfire: ", "coalesced: ")) for _, reason in skipped)


@given(slots=past_slots.map(sorted), grace=graces, coalesce=st.booleans())
def test_fired_slots_are_within_grace_and_coalesce_fires_only_the_latest_fresh_one(slots, grace, coalesce):
    fire, skipped = plan(policy(grace, coalesce), slots, NOW)
    fresh = [s for s in slots if NOW - s <= dt.timedelta(seconds=grace)]
    assert all(NOW - s <= dt.timedelta(seconds=grace) for s in fire)
    assert fire == (fresh[-1:] if coalesce else fresh)
    misfires = [slot for slot, reason in skipped if reason.startswith("misfire: ")]
    assert misfires == [s for s in slots if s not in fresh]  # a fresh slot is never called a misfire


def test_with_coalesce_the_latest_slot_fires_whatever_order_the_slots_came_in():
    late, latest = ago(20), ago(10)
    assert plan(policy(), [latest, ago(30), late], NOW) == (
        [latest],
        [(ago(30), "coalesced: a later missed slot ran instead"), (late, "coalesced: a later missed slot ran instead")],
    )
