from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from tasks_app.monitoring.views import healthz, metrics

# The job and run lists need the width more than a second menu; the index and breadcrumbs navigate.
admin.site.enable_nav_sidebar = False

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("api/", include("tasks_app.api.urls")),
    # Browsers ask for it on pages without a <link rel="icon">, such as /healthz's JSON.
    path("favicon.ico", RedirectView.as_view(url=static("taskhub/favicon.svg"), permanent=False)),
]
