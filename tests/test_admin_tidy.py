"""The small things of a tidy admin: ISO dates, seconds, help that fits the schedule, code in descriptions, outcomes."""

import html
import re

import pytest
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from tasks_app.admin.text import inline_code, plain_code
from tasks_app.models import ApiClient
from tests.test_admin import JOBS, form_data, job_url, make_run

ISO = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC"


@pytest.mark.django_db
def test_the_api_clients_list_and_a_history_page_show_iso_dates(admin_client, make_job):
    ApiClient.objects.create_client(name="deploy")
    ApiClient.objects.filter(name="deploy").update(last_used_at="2030-01-02T03:04:05Z")
    listing = admin_client.get(reverse("admin:tasks_app_apiclient_changelist")).text
    row = listing.split('class="field-name"')[1].split("</tr>")[0]
    assert "2030-01-02 03:04:05 UTC" in row and re.search(ISO, row.split("field-created_at")[1])
    assert not re.search(r"\b(a\.m\.|p\.m\.|noon|midnight)", listing)

    job = make_job()
    admin_client.post(job_url("pause", job))
    page = admin_client.get(job_url("history", job)).text
    assert re.search(rf'<th scope="row">{ISO}</th>', page)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("schedule", "shown"),
    [
        ({"schedule_type": "cron"}, "cron expression is read in"),
        ({"schedule_type": "interval", "interval_seconds": 60}, "interval ticks count from 1970-01-01 UTC"),
        ({"schedule_type": "once"}, "Run at is entered in UTC"),
    ],
)
def test_the_time_zone_help_follows_the_schedule_type(admin_client, make_job, schedule, shown):
    page = admin_client.get(job_url("change", make_job(**schedule))).text
    helps = re.findall(r'<span class="taskhub-zone-help" data-schedule-type="(\w+)"( hidden)?>([^<]*)</span>', page)
    visible = [text for _, hidden, text in helps if not hidden]
    assert len(helps) == 3 and len(visible) == 1 and shown in html.unescape(visible[0])


@pytest.mark.django_db
def test_a_form_sent_back_with_errors_shows_the_help_of_the_type_chosen(admin_client):
    response = admin_client.post(reverse("admin:tasks_app_job_add"), form_data(schedule_type="interval"))
    assert response.status_code == 200  # no interval given: the form comes back
    visible = re.findall(r'data-schedule-type="(\w+)">', response.text)
    assert visible == ["interval"]


@pytest.mark.django_db
def test_handler_descriptions_show_code_as_code_and_no_backticks(admin_client):
    page = admin_client.get(reverse("admin:tasks_app_job_add")).text
    assert "Wait <code>seconds</code>, reporting progress in <code>steps</code>" in page
    option = re.search(r'<option value="sleep">([^<]*)</option>', page)[1]
    assert option.startswith("sleep — Wait seconds, reporting progress in steps")
    handlers = page.split('class="taskhub-handlers"')[1].split("</table>")[0]
    assert "`" not in handlers and "`" not in option


@given(st.text(alphabet=st.sampled_from(["`", "<", ">", "&", "a", " ", '"'])))
def test_inline_code_escapes_everything_and_keeps_the_text(text):
    rendered = str(inline_code(text))
    assert html.unescape(re.sub(r"</?code>", "", rendered)) == plain_code(text)
    assert re.sub(r"</?code>", "", rendered).count("<") == 0


@pytest.mark.django_db
def test_a_paused_job_says_so_next_to_its_title(admin_client, make_job):
    running, paused = make_job(name="running"), make_job(name="paused", enabled=False)
    assert 'id="job-paused"' not in admin_client.get(job_url("change", running)).text
    page = admin_client.get(job_url("change", paused)).text
    assert '<h2>paused <span class="taskhub-badge taskhub-paused" id="job-paused">Paused</span></h2>' in page


@pytest.mark.django_db
def test_a_succeeded_run_shows_a_short_result_as_its_outcome(admin_client, make_job):
    job = make_job()
    make_run(job, status="succeeded", result=["report.csv", 12])
    make_run(job, status="succeeded", result={"text": "x" * 200})
    make_run(job, status="failed", error="Traceback...\nRuntimeError: boom", result={"partial": 1})
    table = admin_client.get(job_url("change", job)).text.split("Last 10 runs")[1].split("</table>")[0]
    assert "<td>[&quot;report.csv&quot;, 12]</td>" in table
    assert "{&quot;text&quot;: &quot;" + "x" * 49 + "…" in table and "x" * 60 not in table
    assert "RuntimeError: boom" in table and "partial" not in table


@pytest.mark.django_db
def test_fire_times_and_next_runs_show_seconds(admin_client, make_job):
    make_job(name="every-minute", schedule_type="cron", cron_expression="* * * * *")
    row = next(r for r in admin_client.get(JOBS).text.split("<tr") if ">every-minute<" in r)
    assert re.search(r'class="taskhub-nowrap">\d{2}:\d{2}:00 UTC<', row)
