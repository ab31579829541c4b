"""API clients in the admin: a new client's secret is shown once, in the message after saving.

The secret is never shown again (the change page has the key id only); "Rotate secret"
replaces it and shows the new one once. The old secret stops working at that moment.
"""

from django.contrib import admin, messages
from django.utils.html import format_html

from tasks_app.api.models import ApiClient


def show_secret(modeladmin, request, client: ApiClient, secret: str, what: str) -> None:
    modeladmin.message_user(request, format_html(
        "{} “{}”: key id <code>{}</code>, secret <code>{}</code> — copy the secret now: it is shown only "
        "this once and cannot be recovered (rotate it to get a new one).", what, client.name, client.key_id, secret),
        messages.SUCCESS)


@admin.action(permissions=["change"], description="Rotate the secret of selected API clients")
def rotate_secret(modeladmin, request, queryset):
    for client in queryset:
        show_secret(modeladmin, request, client, client.rotate_secret(), "New secret for API client")


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    list_display = ("name", "key_id", "enabled", "last_used_at", "created_at")
    list_filter = ("enabled",)
    search_fields = ("name", "key_id")
    actions = [rotate_secret]
    fields = ("name", "key_id", "enabled", "allowed_jobs", "created_at", "last_used_at")
    readonly_fields = ("key_id", "created_at", "last_used_at")
    filter_horizontal = ("allowed_jobs",)

    def get_fields(self, request, obj=None):
        # A new client has no key id yet (it is made on save): the add page asks only what a person chooses.
        return self.fields if obj is not None else ("name", "enabled", "allowed_jobs")

    def save_model(self, request, obj, form, change):
        if not change:
            obj.new_secret = obj.set_secret()
        super().save_model(request, obj, form, change)

    def response_add(self, request, obj, post_url_continue=None):
        response = super().response_add(request, obj, post_url_continue)
        show_secret(self, request, obj, obj.new_secret, "Created API client")
        return response
