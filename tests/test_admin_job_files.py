"""The job admin's export action and import preview: the same file and the same validation as the commands."""

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from tasks_app.models import Job
from tasks_app.models.job_files import FILE_FIELDS
from tests.factories import job_factory
from tests.test_admin import staff

pytestmark = pytest.mark.django_db

JOBS = reverse("admin:tasks_app_job_changelist")
EXPORT = reverse("admin:tasks_app_job_export")
IMPORT = reverse("admin:tasks_app_job_import")
CONFIRM = reverse("admin:tasks_app_job_process_import")
EVERY_FIELD = {f"jobresource_{field}": "on" for field in FILE_FIELDS}


def export_command(*args) -> str:
    out = io.StringIO()
    call_command("export_jobs", *args, stdout=out)
    return out.getvalue()


def export_selected(client, *jobs, fmt="0"):
    """The action's form, then its POST: the file's response."""
    page = client.post(JOBS, {"action": "export_admin_action", "_selected_action": [job.pk for job in jobs]})
    assert page.status_code == 200 and "admin/import_export/export.html" in [t.name for t in page.templates]
    data = {"format": fmt, "resource": "0", "export_items": [job.pk for job in jobs], **EVERY_FIELD}
    return client.post(EXPORT, data)


def preview(client, text: str, name="jobs.json", fmt="0"):
    return client.post(IMPORT, {"format": fmt, "resource": "0", "import_file": SimpleUploadedFile(name, text.encode())})


def confirm(client, page):
    form = page.context["confirm_form"]
    return client.post(CONFIRM, {name: form.initial[name] for name in form.initial}, follow=True)


@pytest.mark.parametrize("fmt, option", [("0", "json"), ("1", "yaml")])
def test_export_selected_gives_the_commands_file_for_those_jobs(admin_client, fmt, option):
    one, _, three = (job_factory(name=name) for name in ("c-three", "b-two", "a-one"))
    response = export_selected(admin_client, one, three, fmt=fmt)
    assert response.status_code == 200 and response["Content-Disposition"].startswith("attachment;")
    assert response.content.decode() == export_command("--format", option, "c-three", "a-one")


def test_export_needs_view_and_import_needs_add_and_change(client, django_user_model):
    job_factory(name="seen")
    viewer = staff(client, django_user_model, "view_job")
    assert "export_admin_action" in viewer.get(JOBS).context["action_form"].fields["action"].choices.__str__()
    assert viewer.get(IMPORT).status_code == 403
    adder = staff(client, django_user_model, "view_job", "add_job")
    assert adder.get(IMPORT).status_code == 403
    both = staff(client, django_user_model, "view_job", "add_job", "change_job")
    assert both.get(IMPORT).status_code == 200
    nobody = staff(client, django_user_model)
    assert nobody.post(EXPORT, {"format": "0"}).status_code == 403


def test_import_previews_the_changes_and_applies_them_on_confirm(admin_client):
    job_factory(name="kept")
    job_factory(name="edited")
    rows = json.loads(export_command())
    rows[0]["priority"] = 8  # "edited"
    rows.append({**rows[1], "name": "new-one"})
    page = preview(admin_client, json.dumps(rows))
    result = page.context["result"]
    kinds = {row.object_repr: row.import_type for row in result.rows}
    assert kinds == {"edited": "update", "kept": "skip", "new-one": "new"}
    assert not Job.objects.filter(name="new-one").exists()  # a preview only
    assert Job.objects.get(name="edited").priority == 5
    done = confirm(admin_client, page)
    assert any("1 new, 1 updated" in str(m) for m in done.context["messages"])
    assert Job.objects.get(name="edited").priority == 8 and Job.objects.filter(name="new-one").exists()
    again = preview(admin_client, json.dumps(rows))
    assert {row.import_type for row in again.context["result"].rows} == {"skip"}  # idempotent, as the command


def test_an_invalid_job_shows_the_models_errors_and_offers_no_confirm(admin_client):
    job_factory(name="kept")
    rows = json.loads(export_command())
    rows[0]["priority"] = 1
    rows.append({"name": "bad", "handler": "number_sum", "schedule_type": "cron", "cron_expression": "61 * * * *"})
    page = preview(admin_client, json.dumps(rows))
    assert page.status_code == 200 and "confirm_form" not in page.context
    invalid = [row for row in page.context["result"].invalid_rows]
    assert len(invalid) == 1 and "cron_expression" in invalid[0].field_specific_errors
    assert "cron minute field &#x27;61&#x27; is invalid" in page.content.decode()
    assert Job.objects.get(name="kept").priority == 5 and Job.objects.count() == 1


@pytest.mark.parametrize(
    "text, fragment",
    [
        ('[{"name": "x", "colour": "red"}]', "job &#x27;x&#x27;: unknown field &#x27;colour&#x27;"),
        ('[{"name": "x"}, {"name": "x"}]', "job &#x27;x&#x27;: named twice in the file"),
        ('{"name": "x"}', "expected a list of jobs, got a dict"),
    ],
)
def test_a_bad_file_is_a_form_error_with_the_commands_words(admin_client, text, fragment):
    page = preview(admin_client, text)
    assert page.status_code == 200 and "confirm_form" not in page.context
    assert fragment in page.content.decode() and "Traceback" not in page.content.decode()
    assert Job.objects.count() == 0


def test_the_job_pages_keep_their_own_templates(admin_client):
    job = job_factory(name="page")
    change = admin_client.get(reverse("admin:tasks_app_job_change", args=[job.pk]))
    assert "admin/tasks_app/job/change_form.html" in [t.name for t in change.templates]
    listing = admin_client.get(JOBS)
    names = [t.name for t in listing.templates]
    assert "admin/tasks_app/job/change_list.html" in names and "admin/import_export/change_list_import.html" in names
    assert IMPORT in listing.content.decode()


def test_a_hand_written_file_may_leave_fields_out_as_with_the_command(admin_client):
    job_factory(name="kept", priority=7, description="stays")
    text = json.dumps(
        [
            {"name": "kept", "enabled": False},
            {"name": "mini", "handler": "number_sum", "kwargs": {"x": 1, "y": 2}, "cron_expression": "0 3 * * *"},
        ]
    )
    page = preview(admin_client, text)
    assert {row.object_repr: row.import_type for row in page.context["result"].rows} == {
        "kept": "update",
        "mini": "new",
    }
    confirm(admin_client, page)
    kept, mini = Job.objects.get(name="kept"), Job.objects.get(name="mini")
    assert (kept.enabled, kept.priority, kept.description) == (False, 7, "stays")
    assert (mini.schedule_type, mini.engine, mini.timezone) == ("cron", "apscheduler", "UTC")
