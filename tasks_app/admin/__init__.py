"""The Django admin: the product's main UI for jobs, their runs and the API clients.

``jobs`` registers the job pages and ``runs`` the run history, ``actions`` and ``run_actions``
their bulk actions, ``job_files`` the jobs' export action and import page, ``views`` the
buttons' URLs (run now, pause, resume) and what the pages poll, ``display`` the list filters
and small HTML helpers (``text`` the one-line texts), ``dashboard`` the index page's panels,
``forms`` the job form (widgets and help only: validation is the model's), ``api_clients`` the
API client pages, ``engines`` keeps the engines' own admin pages read-only for superusers,
``index`` orders the index (taskhub first, engine internals last), and ``audit`` writes what
actions changed to the admin's log.

What it is not: it validates nothing itself and never calls an engine's internals; it
goes through the models, the runner's requests and ``engines.request_run``.
"""

from django.contrib import admin

from tasks_app.admin import api_clients, jobs, runs  # noqa: F401  (registers the admin pages)
from tasks_app.admin import dashboard as admin_dashboard
from tasks_app.admin import engines as admin_engines
from tasks_app.admin import index as admin_index

admin_dashboard.install(admin.site)  # the operator's dashboard on the admin index
admin_engines.lock_down(admin.site)  # the engines' own pages: read-only, superusers only
admin_index.install(admin.site)  # taskhub first, the engines' pages in one collapsed section
