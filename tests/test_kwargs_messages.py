"""Bad kwargs get one readable message on the kwargs field: in the admin form, from ``full_clean``.

Whatever is typed into the box or stored in the field — text that is not JSON, a list, a number,
an object that does not fit the handler — the answer is exactly one line for a person on the
kwargs field: never two messages, never an internal key such as ``__all__``, never a 500.
"""

import json

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tasks_app.admin.forms import JobForm
from tasks_app.models import Job

ADD = reverse("admin:tasks_app_job_add")
JOB = {
    "name": "kwargs-messages",
    "handler": "number_sum",
    "engine": "apscheduler",
    "schedule_type": "interval",
    "interval_seconds": 60,
    "timezone": "UTC",
}
FORM = {
    **JOB,
    "interval_seconds": "60",
    "enabled": "on",
    "queue": "default",
    "priority": "0",
    "jitter_seconds": "0",
    "misfire_grace_seconds": "300",
    "max_running": "1",
    "alert_after_failures": "0",
    "alert_when_overdue": "on",
    "alert_emails": "",
}
examples = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
# Near misses too: the handler's own parameters with values of any type.
kwargs_values = json_values | st.fixed_dictionaries({"x": json_values}, optional={"y": json_values, "z": json_values})
typed = st.one_of(
    st.text(max_size=30),
    kwargs_values.map(json.dumps),
    st.sampled_from(["{", "[1, 2", "{'x': 1}", '{"x": 1,}', "NaN", "1e999", "x=1", '{"x": 1} {"y": 2}']),
)


def one_message(errors: list[str]) -> str:
    """The one message, checked for what a person must never see."""
    assert len(errors) == 1, errors
    [message] = errors
    assert message and "__all__" not in message and "\n" not in message, message
    return message


def orm_message(kwargs) -> str | None:
    try:
        Job(**JOB, kwargs=kwargs).full_clean()
    except ValidationError as exc:
        assert set(exc.message_dict) == {"kwargs"}, exc.message_dict
        return one_message(exc.message_dict["kwargs"])
    return None


@pytest.mark.django_db
@examples
@given(kwargs=kwargs_values)
@example(kwargs=[1, 2]).via("the issue")
@example(kwargs=None).via("the issue")
@example(kwargs={"x": 1, "y": 2})
def test_full_clean_gives_one_readable_message_on_kwargs(kwargs):
    message = orm_message(kwargs)
    if not isinstance(kwargs, dict):
        assert message == "kwargs must be a JSON object"


@pytest.mark.django_db
@examples
@given(text=typed)
@example(text="not json").via("the issue")
@example(text="[1, 2]").via("the issue")
@example(text='{"x": 1, "y": 2}')
@example(text="\r\n ")  # a blank box, however blank: no kwargs
def test_the_form_gives_one_readable_message_and_the_models_own(text):
    form = JobForm(data={**FORM, "kwargs": text})
    valid = form.is_valid()
    assert set(form.errors) <= {"kwargs"}, form.errors
    try:
        parsed = json.loads(text) if text.strip() else None  # a blank box is no kwargs
    except ValueError:
        assert not valid
        assert one_message(form.errors["kwargs"]).startswith("Not valid JSON: ")
        return
    # Text that is JSON gets the model's verdict on its value (an emptied box or null: no kwargs).
    expected = orm_message({} if parsed is None else parsed)
    assert (None if valid else one_message(form.errors["kwargs"])) == expected


@pytest.mark.django_db
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(st.characters(exclude_categories=["Cs"]), max_size=30) | kwargs_values.map(json.dumps))
@example(text="not json")
def test_the_admin_answers_bad_kwargs_with_the_form_never_a_500(admin_client, text):
    response = admin_client.post(ADD, {**FORM, "kwargs": text})
    assert response.status_code in (200, 302)
    if response.status_code == 200:
        one_message(response.context["adminform"].form.errors["kwargs"])
    Job.objects.all().delete()
