"""A job's alert fields: validated in the model, so the admin, the ORM and declared jobs refuse the same input."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.core.validators import validate_email
from django.test import override_settings
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks_app.alerts import streaks
from tasks_app.models import AlertMessage, AlertStreak, Job
from tasks_app.models.declared import sync_declared
from tests.factories import job_factory

pytestmark = pytest.mark.django_db


def test_alerts_are_off_for_failures_and_on_for_overdue_by_default():
    job = job_factory()
    assert (job.alert_after_failures, job.alert_when_overdue, job.alert_emails) == (0, True, "")


def test_addresses_are_stored_as_one_comma_separated_line():
    job = job_factory(alert_emails=" a@example.com;b@example.org\n  c@example.net, ")
    assert job.alert_emails == "a@example.com, b@example.org, c@example.net"


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("not-an-address", "'not-an-address'"),
        ("ok@example.com, @example.com", "'@example.com'"),
        ("a@b@example.com", "'a@b@example.com'"),
    ],
)
def test_a_bad_address_is_a_field_error_naming_it(value, named):
    with pytest.raises(ValidationError) as caught:
        job_factory(alert_emails=value)
    assert list(caught.value.message_dict) == ["alert_emails"]
    assert named in caught.value.message_dict["alert_emails"][0]
    assert not Job.objects.exists()


@pytest.mark.parametrize("value", [-1, 1001, 2.5, "3"])
def test_alert_after_failures_is_a_whole_number_from_0_to_1000(value):
    with pytest.raises(ValidationError) as caught:
        job_factory(alert_after_failures=value)
    assert "alert_after_failures" in caught.value.message_dict


address = st.from_regex(r"[a-z0-9.+_-]{1,12}@[a-z0-9-]{1,10}\.[a-z]{2,6}", fullmatch=True)
junk = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=20)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(address | junk, max_size=4))
def test_any_list_is_stored_when_every_address_is_valid_and_refused_on_the_field_otherwise(items):
    job = Job(name="hypothesis-job", handler="number_sum", kwargs={"x": 1, "y": 2}, schedule_type="interval")
    job.interval_seconds, job.alert_emails = 3600, items
    tokens = [t for item in items for t in item.replace(",", " ").replace(";", " ").split()]
    try:
        valid = all(validate_email(t) is None for t in tokens) and len(", ".join(tokens)) <= 1000
    except ValidationError:
        valid = False
    try:
        job.full_clean()
    except ValidationError as exc:
        assert not valid and "alert_emails" in exc.message_dict
    else:
        assert valid and job.alert_emails == ", ".join(tokens)


def test_declared_jobs_take_the_alert_fields_and_their_errors():
    declared = {
        "name": "nightly",
        "handler": "number_sum",
        "kwargs": {"x": 1, "y": 2},
        "schedule_type": "cron",
        "cron_expression": "0 3 * * *",
        "alert_after_failures": 2,
        "alert_emails": ["owner@example.com", "team@example.com"],
    }
    assert sync_declared([declared])["created"] == 1
    assert sync_declared([declared])["unchanged"] == 1  # the list compares equal to the stored line
    job = Job.objects.get(name="nightly")
    assert (job.alert_after_failures, job.alert_emails) == (2, "owner@example.com, team@example.com")
    with pytest.raises(CommandError, match="job 'nightly': alert_emails: Not a valid e-mail address: 'nope'."):
        with override_settings(TASKHUB={"JOBS": [{**declared, "alert_emails": "nope"}]}):
            call_command("sync_jobs")


def test_retention_deletes_alerts_whose_streak_ended_before_the_cutoff_and_keeps_open_ones(taskhub_settings):
    taskhub_settings(ALERT_WEBHOOK_URL="http://127.0.0.1:9/hook")
    old, recent, still_open = (job_factory() for _ in range(3))
    for job in (old, recent, still_open):
        streaks.open_streak(job, "failing", now=timezone.now() - dt.timedelta(days=60))
    for job, days in ((old, 40), (recent, 5)):
        streaks.close(job, "failing", now=timezone.now() - dt.timedelta(days=days))
    call_command("cleanup_runs", "--older-than", "30")
    assert sorted(AlertStreak.objects.values_list("job__name", flat=True)) == sorted([recent.name, still_open.name])
    assert not AlertMessage.objects.filter(job=old).exists()
    assert AlertMessage.objects.filter(job=recent).count() == 2  # the alert and its recovery
