"""API clients in the admin: a new or rotated secret is shown once, in the page that answers the save.

The secret is rendered into that response only (``Cache-Control: no-store``): never put in a
message, the session or a cookie, and never shown again (the change page has the key id only).
"Rotate secret" replaces it and shows the new one the same way; the old one stops working at once.
"""

from django import forms
from django.contrib import admin
from django.db.models import Count
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers

from tasks_app.models.api_clients import ApiClient


def show_secrets(modeladmin, request, secrets: list[tuple[ApiClient, str]], title: str) -> TemplateResponse:
    opts = modeladmin.model._meta
    context = {
        **modeladmin.admin_site.each_context(request),
        "opts": opts,
        "title": title,
        "secrets": secrets,
        "next_url": reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
    }
    response = TemplateResponse(request, "admin/tasks_app/apiclient/secret.html", context)
    add_never_cache_headers(response)  # a secret must not stay in a browser or proxy cache
    return response


@admin.action(permissions=["change"], description="Rotate the secret of selected API clients")
def rotate_secret(modeladmin, request, queryset):
    secrets = [(client, client.rotate_secret()) for client in queryset]
    for client, _ in secrets:
        modeladmin.log_change(request, client, "Rotated the secret.")  # who did it, in the client's history
    return show_secrets(modeladmin, request, secrets, "New API secrets")


class ApiClientForm(forms.ModelForm):
    def clean(self):
        cleaned = super().clean()
        # The m2m is saved after the model, so its clean() cannot see both: the form says it.
        if cleaned.get("all_jobs") and cleaned.get("allowed_jobs"):
            self.add_error("allowed_jobs", "Choose either all jobs or some jobs, not both.")
        return cleaned


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    form = ApiClientForm
    list_display = ("name", "key_id", "enabled", "scope", "last_used_at", "created_at")
    list_filter = ("enabled", "all_jobs")
    search_fields = ("name", "key_id")
    actions = [rotate_secret]
    fields = ("name", "key_id", "enabled", "all_jobs", "allowed_jobs", "may_run_paused", "created_at", "last_used_at")
    readonly_fields = ("key_id", "created_at", "last_used_at")
    filter_horizontal = ("allowed_jobs",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(job_count=Count("allowed_jobs"))

    @admin.display(description="Jobs")
    def scope(self, client):
        if client.all_jobs:
            return "all jobs"
        return f"{client.job_count} job{'s' if client.job_count != 1 else ''}" if client.job_count else "none"

    def get_fields(self, request, obj=None):
        # A new client has no key id yet (it is made on save): the add page asks only what a person chooses.
        return self.fields if obj is not None else ("name", "enabled", "all_jobs", "allowed_jobs", "may_run_paused")

    def save_model(self, request, obj, form, change):
        if not change:
            obj.new_secret = obj.set_secret()
        super().save_model(request, obj, form, change)

    def response_add(self, request, obj, post_url_continue=None):
        # Not the usual redirect with a message: messages travel in a cookie, the secret must not.
        return show_secrets(self, request, [(obj, obj.new_secret)], "New API client")
