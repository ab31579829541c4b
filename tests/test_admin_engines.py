"""The engines' own admin pages: a staff user with every permission may look, never change or act."""

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


def test_staff_with_every_permission_cannot_add_change_delete_or_act_on_engine_rows(
    client, all_permissions_staff, admin_user
):
    registered = registered_elsewhere()
    objects = {model: make(model) for model, _ in registered}
    before = snapshot(registered)
    superuser_request, staff_request = RequestFactory().get("/"), RequestFactory().get("/")
    superuser_request.user, staff_request.user = admin_user, all_permissions_staff
    tried = []
    for model, model_admin in registered:
        info, obj = (model._meta.app_label, model._meta.model_name), objects[model]
        add, change, delete = (
            reverse(f"admin:{info[0]}_{info[1]}_{view}", args=args)
            for view, args in (("add", []), ("change", [obj.pk]), ("delete", [obj.pk]))
        )
        assert client.get(add).status_code == 403, add
        assert client.post(add, {}).status_code == 403, add
        assert client.post(change, {}).status_code == 403, change
        assert client.get(delete).status_code == 403, delete
        assert client.post(delete, {"post": "yes"}).status_code == 403, delete
        assert client.get(change).status_code == 200, change  # may still look
        assert model_admin.get_actions(staff_request) == {}
        changelist = reverse(f"admin:{info[0]}_{info[1]}_changelist")
        for action in model_admin.get_actions(superuser_request):
            client.post(changelist, {"action": action, "_selected_action": [obj.pk], "index": 0, "post": "yes"})
            tried.append(action)
    assert snapshot(registered) == before  # nothing changed
    assert {
        "run_selected_jobs",
        "enable_tasks",
        "disable_tasks",
        "toggle_tasks",
        "run_tasks",
        "delete_selected",
    } <= set(tried)


def test_a_superuser_still_may(admin_client):
    from django_celery_beat.models import PeriodicTask

    task = make(PeriodicTask)
    changelist = reverse("admin:django_celery_beat_periodictask_changelist")
    admin_client.post(changelist, {"action": "disable_tasks", "_selected_action": [task.pk], "index": 0})
    task.refresh_from_db()
    assert task.enabled is False
    assert admin_client.get(reverse("admin:django_apscheduler_djangojob_add")).status_code == 200
