"""A job's numbers are stored as given or refused: 1.5 seconds never becomes 1, True never 1.

Every numeric field of ``Job`` is enumerated from the model, so a new one is covered too.
"""

import decimal
import math

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import models
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks_app.models import Job

INTERVAL_JOB = {
    "name": "numbers",
    "handler": "number_sum",
    "kwargs": {"x": 1, "y": 2},
    "engine": "apscheduler",
    "schedule_type": "interval",
    "interval_seconds": 60,
    "timezone": "UTC",
}
WHOLE = [f.name for f in Job._meta.concrete_fields if isinstance(f, models.IntegerField) and not f.primary_key]
REAL = [f.name for f in Job._meta.concrete_fields if isinstance(f, (models.FloatField, models.DecimalField))]
examples = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)

not_whole = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: not (math.isfinite(x) and x == int(x))),
    st.decimals(allow_nan=False, allow_infinity=False).filter(lambda d: d != d.to_integral_value()),
    st.booleans(),
    st.floats(min_value=0.01, max_value=1e6).map(str),  # numeric text, e.g. "1.5"
    st.integers(1, 1000).map(str),  # "60" is text, not a number
)
not_real = st.one_of(
    st.booleans(),
    st.just(math.nan),
    st.just(math.inf),
    st.just(-math.inf),
    st.floats(min_value=0, max_value=1e6).map(str),
)


def refused(field: str, value) -> str:
    with pytest.raises(ValidationError) as caught:
        Job(**{**INTERVAL_JOB, field: value}).full_clean()
    messages = caught.value.message_dict
    assert field in messages, messages
    return " ".join(messages[field])


def test_every_numeric_field_is_covered():
    assert {
        "interval_seconds",
        "priority",
        "timeout_seconds",
        "max_retries",
        "jitter_seconds",
        "misfire_grace_seconds",
        "max_running",
    } <= set(WHOLE)
    assert REAL == ["retry_backoff_seconds"]


@pytest.mark.django_db
@examples
@given(field=st.sampled_from(WHOLE), value=not_whole)
def test_a_whole_number_field_refuses_anything_but_a_whole_number(field, value):
    assert "whole number" in refused(field, value)
    with pytest.raises(ValidationError):
        Job.objects.create(**{**INTERVAL_JOB, field: value})
    assert not Job.objects.exists()


@pytest.mark.django_db
@examples
@given(field=st.sampled_from(REAL), value=not_real)
def test_a_real_number_field_refuses_text_bools_and_infinities(field, value):
    assert "number" in refused(field, value)


@pytest.mark.django_db
@examples
@given(value=st.integers(1, 3600))
def test_whole_numbers_are_kept_exactly(value):
    job = Job.objects.create(
        **{**INTERVAL_JOB, "interval_seconds": value, "jitter_seconds": value, "retry_backoff_seconds": value}
    )
    job.refresh_from_db()
    assert (job.interval_seconds, job.jitter_seconds, job.retry_backoff_seconds) == (value, value, value)
    job.delete()


@pytest.mark.django_db
@pytest.mark.parametrize("field", WHOLE)
def test_sync_jobs_refuses_a_fraction_in_one_line_and_writes_nothing(field):
    with override_settings(TASKHUB={**_taskhub(), "JOBS": [{**INTERVAL_JOB, field: 1.5}]}):
        with pytest.raises(CommandError) as caught:
            call_command("sync_jobs")
    message = str(caught.value)
    assert "\n" not in message and field in message and "whole number" in message
    assert not Job.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("field", WHOLE)
def test_the_admin_form_refuses_a_fraction_as_a_field_error(admin_client, field):
    from django.urls import reverse

    from tests.test_admin import form_data

    data = form_data(schedule_type="interval", cron_expression="", **{"interval_seconds": "60", field: "1.5"})
    response = admin_client.post(reverse("admin:tasks_app_job_add"), data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == [field] and "whole number" in errors[field][0]
    assert not Job.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("value", [1.5, True, False, "1.5", "60", math.inf, decimal.Decimal("60.5")])
def test_the_reported_and_found_cases_are_refused(value):
    assert "whole number" in refused("interval_seconds", value)


@pytest.mark.django_db
@pytest.mark.parametrize("value", [True, math.nan, math.inf, -math.inf, "1.5"])
def test_the_found_backoff_cases_are_refused(value):
    assert "finite number" in refused("retry_backoff_seconds", value)


def _taskhub():
    from django.conf import settings as django_settings

    return django_settings.TASKHUB
