"""The engines' own admin pages: superusers may read them, nobody may change or act; the index's order."""

import datetime as dt
import itertools

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.db import models
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(300)]
_numbers = itertools.count(1)


def registered_elsewhere():
    """Every model the admin shows that is not ours. Django's own (auth) keeps Django's rules:
    a user who may change users may make a superuser anyway."""
    return [
        (model, model_admin)
        for model, model_admin in admin.site._registry.items()
        if model._meta.app_label != "tasks_app" and not model.__module__.startswith("django.")
    ]


def value_for(field):
    if field.choices:
        return field.choices[0][0]
    if isinstance(field, models.ForeignKey):
        return make(field.related_model)
    if isinstance(field, (models.CharField, models.TextField)):
        return f"x{next(_numbers)}"[: field.max_length or 50]
    if isinstance(field, models.BinaryField):
        return b"state"
    if isinstance(field, models.DateTimeField):
        return timezone.now()
    if isinstance(field, models.DateField):
        return dt.date.today()
    if isinstance(field, (models.DecimalField, models.FloatField)):
        return 1
    if isinstance(field, models.IntegerField):
        return 1
    if isinstance(field, models.JSONField):
        return {}
    raise AssertionError(f"no test value for {field!r}")


def make(model):
    """One row of ``model``: every required field filled, with what its own validation insists on."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    if model is PeriodicTask:
        return PeriodicTask.objects.create(
            name=f"task{next(_numbers)}", task="tasks.noop", enabled=True, interval=make(IntervalSchedule)
        )
    if model is IntervalSchedule:
        return IntervalSchedule.objects.create(every=next(_numbers), period=IntervalSchedule.SECONDS)
    fields = {
        f.name: value_for(f)
        for f in model._meta.concrete_fields
        if not (
            f.null
            or f.blank
            or f.has_default()
            or f.auto_created
            or getattr(f, "auto_now", False)
            or getattr(f, "auto_now_add", False)
        )
    }
    return model.objects.create(**fields)


def snapshot(registered):
    return {model: sorted(map(repr, model.objects.values())) for model, _ in registered}


@pytest.fixture
def all_permissions_staff(client, django_user_model):
    user = django_user_model.objects.create_user("staff-all", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.all())
    client.force_login(user)
    return user


def test_the_engines_admins_are_all_covered():
    labels = {model._meta.app_label for model, _ in registered_elsewhere()}
    assert {"django_celery_beat", "django_celery_results", "django_apscheduler"} <= labels


def test_nobody_may_add_change_delete_or_act_on_engine_rows_and_only_superusers_look(
    client, all_permissions_staff, admin_client, admin_user
):
    registered = registered_elsewhere()
    objects = {model: make(model) for model, _ in registered}
    before = snapshot(registered)
    superuser_request, staff_request = RequestFactory().get("/"), RequestFactory().get("/")
    superuser_request.user, staff_request.user = admin_user, all_permissions_staff
    for model, model_admin in registered:
        info, obj = (model._meta.app_label, model._meta.model_name), objects[model]
        add, change, delete, changelist = (
            reverse(f"admin:{info[0]}_{info[1]}_{view}", args=args)
            for view, args in (("add", []), ("change", [obj.pk]), ("delete", [obj.pk]), ("changelist", []))
        )
        for who in (client, admin_client):
            assert who.get(add).status_code == 403, add
            assert who.post(add, {}).status_code == 403, add
            assert who.post(change, {}).status_code == 403, change
            assert who.get(delete).status_code == 403, delete
            assert who.post(delete, {"post": "yes"}).status_code == 403, delete
            who.post(changelist, {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes"})
        assert client.get(changelist).status_code == 403 and client.get(change).status_code == 403
        listing, page = admin_client.get(changelist), admin_client.get(change)
        assert listing.status_code == 200 and page.status_code == 200, change  # a superuser reads them
        assert listing.context["action_form"] is None and 'name="_save"' not in page.text
        assert model_admin.get_actions(staff_request) == model_admin.get_actions(superuser_request) == {}
    assert snapshot(registered) == before  # nothing changed


def test_the_index_shows_taskhub_first_and_the_engine_internals_last_and_collapsed(admin_client):
    page = admin_client.get(reverse("admin:index")).text
    order = [page.index(f'class="app-{label} module') for label in ("tasks_app", "auth", "engine_internals")]
    assert order == sorted(order)
    assert page.index("app-tasks_app module") < page.index('id="taskhub-dashboard"') < page.index("app-auth module")
    taskhub = page.split('class="app-tasks_app module')[1].split("</table>")[0]
    models = [taskhub.index(f'class="model-{name}') for name in ("job", "jobrun", "apiclient")]
    assert models == sorted(models) and ">Runs</a>" in taskhub
    internals = page.split('<details class="module" id="engine-internals">')[1].split("</details>")[0]
    for name in ("Celery beat: periodic tasks", "Celery beat: crontabs", "APScheduler: django job executions"):
        assert name in internals
    assert "addlink" not in internals and "changelink" not in internals and "viewlink" in internals
    for label in ("django_celery_beat", "django_celery_results", "django_apscheduler"):
        assert f"app-{label} module" not in page  # only inside the one section


def test_staff_with_every_permission_see_no_engine_internals(client, all_permissions_staff):
    page = client.get(reverse("admin:index")).text
    assert "app-tasks_app module" in page and 'id="engine-internals"' not in page
    assert "django_celery_beat" not in page and "django_apscheduler" not in page
    assert client.get(reverse("admin:app_list", args=["django_celery_beat"])).status_code == 404
    sidebar = client.get(reverse("admin:tasks_app_job_changelist")).text
    assert "Engine internals" not in sidebar and "django_celery_results" not in sidebar
