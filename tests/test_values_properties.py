"""Property-based: any JSON-like kwargs are refused cleanly or stored; any handler outcome ends its run.

The values are what people, scripts and handlers can produce: text with any code point (NUL and
lone surrogates included), deep nesting, big numbers (NaN, infinities, ints of thousands of
digits) and big strings. What hypothesis found is kept below as plain regression cases.
"""

import datetime as dt
import itertools

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks_app import runner
from tasks_app.models import Job, JobRun
from tasks_app.runner import run_requests
from tests import handlers_for_tests
from tests.services import POSTGRES_URL, require

SLOT = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
TERMINAL = {"succeeded", "failed", "timed_out", "cancelled", "skipped"}
_count = itertools.count()

# Any code point, surrogates included, with the troublesome ones drawn often.
# (st.text() would draw a surrogate about once in 2,000 strings.)
characters = st.characters(exclude_categories=()) | st.sampled_from(["\x00", "\ud800", "\udfff", "é", "\U0001f600"])
texts = st.lists(characters, max_size=12).map("".join)
big_texts = st.builds(
    lambda part, times: part * times, st.lists(characters, min_size=1, max_size=3).map("".join), st.integers(0, 40_000)
)
# Ints past Python's 4,300-digit str() limit are plain cases (test_values.py, test_validation.py):
# hypothesis could not print one as a falsifying example.
numbers = (
    st.integers() | st.integers(-(10**4200), 10**4200) | st.floats() | st.sampled_from([2**63, 1e308, 5e-324, -0.0])
)
scalars = st.none() | st.booleans() | numbers | texts | big_texts
json_like = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=3),
    max_leaves=12,
)


def nest(value, depth: int, in_dict: bool):
    for _ in range(depth):
        value = {"k": value} if in_dict else [value]
    return value


# Deeper than ~200 levels, hypothesis cannot print a falsifying example: 1,200 and 100,000 are plain cases.
depths = st.sampled_from([1, 30, 31, 32, 33]) | st.integers(0, 200)
values = json_like | st.builds(nest, json_like, depths, st.booleans())
payloads = st.dictionaries(texts, values, max_size=3)

PROPERTY = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture
def postgres():
    require(POSTGRES_URL, "Postgres")
    if connection.vendor != "postgresql":
        pytest.fail("these properties are about what Postgres stores: run them on Postgres")


# -- kwargs: refused in words, or stored ------------------------------------------------------
def refused_or_stored(payload) -> Job | None:
    job = Job(
        name=f"prop-{next(_count)}",
        handler="echo",
        kwargs={"payload": payload},
        schedule_type="interval",
        interval_seconds=3600,
    )
    try:
        job.full_clean()
    except ValidationError as exc:
        assert list(exc.message_dict) == ["kwargs"], exc.message_dict
        [message] = exc.message_dict["kwargs"]
        assert "\n" not in message and "\x00" not in message and message.isprintable()
        return None
    with transaction.atomic():
        job.save()
    job.refresh_from_db()
    return job


@pytest.mark.django_db
@PROPERTY
@given(payload=payloads)
def test_any_kwargs_are_refused_in_words_or_stored(postgres, payload):
    job = refused_or_stored(payload)
    if job is not None:
        try:  # the same kwargs for one run (the API's and run_job's door)
            with transaction.atomic():
                run = run_requests.queue_run(job, kwargs={"payload": payload})
        except run_requests.RunRefused as exc:
            raise AssertionError(f"the job took these kwargs, its run did not: {exc}") from None
        assert JobRun.objects.filter(pk=run.pk).exists()


@pytest.mark.django_db
@PROPERTY
@given(payload=payloads)
def test_what_the_job_refuses_a_run_refuses_too(postgres, make_job, payload):
    job = make_job(handler="echo", kwargs={})
    stored = refused_or_stored(payload) is not None
    try:
        with transaction.atomic():
            run_requests.queue_run(job, kwargs={"payload": payload})
    except run_requests.RunRefused as exc:
        assert not stored and "\n" not in str(exc) and "\x00" not in str(exc)
    else:
        assert stored


# -- outcomes: the run always ends ------------------------------------------------------------
class Boom(Exception):
    pass


outcomes = values | st.builds(Boom, texts | big_texts) | st.builds(ValueError, texts, values)


def ends(make_job, outcome) -> JobRun:
    key = f"p{next(_count)}"
    handlers_for_tests.outcomes[key] = outcome
    job = make_job(handler="test_outcome", kwargs={"key": key}, max_retries=0)
    runner.run_slot(job.pk, SLOT, "apscheduler")
    run = JobRun.objects.get(job=job)
    assert run.status in TERMINAL, (run.status, run.error)
    return run


@pytest.mark.django_db(transaction=True)
@settings(PROPERTY, max_examples=100)
@given(outcome=outcomes)
def test_whatever_a_handler_returns_or_raises_its_run_ends(postgres, make_job, outcome):
    run = ends(make_job, outcome)
    assert run.status == ("failed" if isinstance(outcome, Exception) else run.status)


# -- what hypothesis found (kept as plain cases) ----------------------------------------------
# Found against the code before the fix (a DataError: 500 from the API and the admin).
FOUND_KWARGS = [pytest.param({"\x00": None}, id="nul-key")]
# Found against the code before the fix (the run stayed running: DataError retried, UnicodeEncodeError raised).
FOUND_OUTCOMES = [
    pytest.param("\x00", id="nul"),
    pytest.param({"\x00": None}, id="nul-key"),
    pytest.param(Boom("\x00"), id="error-with-nul"),
    pytest.param(float("inf"), id="infinity"),
    pytest.param(Boom("\ud800"), id="error-with-surrogate"),
    pytest.param({"\ud800": None}, id="surrogate-key"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("payload", FOUND_KWARGS)
def test_found_kwargs_are_refused_in_words_or_stored(postgres, payload):
    refused_or_stored(payload)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("outcome", FOUND_OUTCOMES)
def test_found_outcomes_end_their_runs(postgres, make_job, outcome):
    ends(make_job, outcome)
