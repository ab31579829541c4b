"""The engines' own admin pages (django-celery-beat, -results, django-apscheduler): engine internals.

Their rows are projections of ``Job`` (``sync_jobs`` rebuilds them) or the engines' bookkeeping:
editing one does nothing (the next projection overwrites it) or breaks the engine, and their
actions skip Django's permissions (``run_selected_jobs`` ran jobs in a web worker for a view-only
user; beat's enable/disable/run actions changed schedules behind the jobs' backs). So every
admin registered by an app that is neither ours nor Django's own is re-registered here read-only
for superusers — no add, change, delete or action — and invisible to everyone else, whatever
permissions they hold. A superuser still reads them to see what an engine holds; the index
shows them in one collapsed "Engine internals" section (``index``).
"""

from django.apps import apps
from django.contrib import admin

OURS = ("tasks_app",)


class EngineInternalsAdmin:
    """Mixed in before a third-party ``ModelAdmin``: superusers may look, nobody may change anything."""

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_add_permission(self, request, *args, **kwargs):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        # Third-party actions state no permissions, so Django would offer them to anyone who may view.
        return {}


def is_engine_app(app_label: str) -> bool:
    """An app that is neither ours nor Django's own: an engine's (the only others installed)."""
    return app_label not in OURS and not apps.get_app_config(app_label).name.startswith("django.")


def is_third_party(model) -> bool:
    return is_engine_app(model._meta.app_label)


def lock_down(site: admin.AdminSite) -> None:
    """Re-register every third-party admin on ``site`` with :class:`EngineInternalsAdmin` mixed in."""
    for model, model_admin in list(site._registry.items()):
        if is_third_party(model) and not isinstance(model_admin, EngineInternalsAdmin):
            cls = type(model_admin)
            locked = type(f"ReadOnly{cls.__name__}", (EngineInternalsAdmin, cls), {})
            site.unregister(model)
            site.register(model, locked)
