"""The engines' own admin pages (django-celery-beat, -results, django-apscheduler): superuser only.

Their rows are derived from ``Job`` (``sync_jobs`` rebuilds them), and their actions skip
Django's permissions: ``run_selected_jobs`` ran jobs in a web worker for a view-only user,
and beat's enable/disable/run actions changed schedules behind the jobs' backs. Every
admin registered by an app that is neither ours nor Django's own is re-registered here so
that adding, changing, deleting and every action require ``is_superuser``, whatever
permissions a staff user holds. Viewing still follows the model's view permission.
"""

from django.contrib import admin

OURS = ("tasks_app",)


class SuperuserOnlyAdmin:
    """Mixed in before a third-party ``ModelAdmin``: only a superuser may change anything."""

    def has_add_permission(self, request, *args, **kwargs):
        return request.user.is_superuser and super().has_add_permission(request, *args, **kwargs)

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_delete_permission(request, obj)

    def get_actions(self, request):
        # Third-party actions state no permissions, so Django would offer them to anyone who may view.
        return super().get_actions(request) if request.user.is_superuser else {}


def is_third_party(model) -> bool:
    return model._meta.app_label not in OURS and not model.__module__.startswith("django.")


def lock_down(site: admin.AdminSite) -> None:
    """Re-register every third-party admin on ``site`` with :class:`SuperuserOnlyAdmin` mixed in."""
    for model, model_admin in list(site._registry.items()):
        if is_third_party(model) and not isinstance(model_admin, SuperuserOnlyAdmin):
            cls = type(model_admin)
            locked = type(f"SuperuserOnly{cls.__name__}", (SuperuserOnlyAdmin, cls), {})
            site.unregister(model)
            site.register(model, locked)
