"""The admin index's order: taskhub first (Jobs, Runs, API clients) with the dashboard, then Django's
own apps, then the engines' internals in one collapsed section (superusers only, read-only: ``engines``).

``install(site)`` wraps ``site.get_app_list``, which the index, the app pages and the navigation
sidebar all read, and the index view, which gets the three parts apart for
``templates/admin/index.html``. What it is not: it grants nothing; what a user may see is each
``ModelAdmin``'s permission, as on the stock index.
"""

from functools import wraps

from django.urls import reverse

from tasks_app.admin.engines import OURS, is_engine_app

INTERNALS = "engine_internals"
MODEL_ORDER = ("Job", "JobRun", "ApiClient")
ENGINE_NAMES = {
    "django_celery_beat": "Celery beat",
    "django_celery_results": "Celery",
    "django_apscheduler": "APScheduler",
}


def install(site) -> None:
    """Order ``site``'s app list and split its index (before its URLs are built)."""
    stock_app_list, stock_index = site.get_app_list, site.index

    @wraps(stock_app_list)
    def get_app_list(request, app_label=None):
        apps = stock_app_list(request, app_label)
        for app in apps:
            if app["app_label"] in OURS:
                app["models"].sort(key=_rank)
        if app_label:
            return apps
        ours = [app for app in apps if app["app_label"] in OURS]
        internals = [app for app in apps if is_engine_app(app["app_label"])]
        others = [app for app in apps if app not in ours and app not in internals]
        return ours + others + ([_grouped(internals)] if internals else [])

    @wraps(stock_index)
    def index(request, extra_context=None):
        apps = site.get_app_list(request)
        extra = {
            "taskhub_apps": [app for app in apps if app["app_label"] in OURS],
            "app_list": [app for app in apps if app["app_label"] not in (*OURS, INTERNALS)],
            "engine_internals": [app for app in apps if app["app_label"] == INTERNALS],
            **(extra_context or {}),
        }
        return stock_index(request, extra_context=extra)

    site.get_app_list, site.index = get_app_list, index


def _rank(model: dict) -> int:
    name = model["object_name"]
    return MODEL_ORDER.index(name) if name in MODEL_ORDER else len(MODEL_ORDER)


def _grouped(internals: list[dict]) -> dict:
    """The engines' apps as one: each model named with its engine ("Celery beat: crontabs")."""
    models = sorted(
        (
            {**model, "name": f"{ENGINE_NAMES.get(app['app_label'], app['name'])}: {model['name'].lower()}"}
            for app in internals
            for model in app["models"]
        ),
        key=lambda model: model["name"],
    )
    return {
        "name": "Engine internals",
        "app_label": INTERNALS,
        "app_url": reverse("admin:index") + "#engine-internals",
        "has_module_perms": True,
        "models": models,
    }
