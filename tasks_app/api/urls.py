from django.urls import path, re_path

from tasks_app.api import views

app_name = "tasks_app_api"

urlpatterns = [
    path("jobs/<str:name>/trigger", views.trigger, name="trigger"),
    path("runs/<int:run_id>", views.run_status, name="run"),
    re_path(r"^(?P<rest>.*)$", views.not_found),  # a JSON 404 for any other path under /api/
]
