from django.contrib import admin
from django.urls import include, path

from tasks_app.views import healthz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("api/", include("tasks_app.api.urls")),
]
