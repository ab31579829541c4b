"""The job list's export action and import page (with a preview before confirming), on django-import-export.

The file is the one ``export_jobs`` writes and ``import_jobs`` reads (``models/job_files``: the
same shape checks, the same bytes out), and each row goes through the upsert's own steps
(``declared.apply_fields``: ``full_clean``; ``declared.changed_fields``: unchanged jobs are
skipped), so the admin and the commands agree. Importing needs add and change on jobs,
exporting needs view. What it is not: no pruning (the command's ``--prune`` does that).
"""

import tablib
from import_export import resources
from import_export.admin import ExportActionMixin, ImportMixin
from import_export.formats.base_formats import JSON, YAML

from tasks_app.exceptions import TaskhubError
from tasks_app.models import Job, job_files
from tasks_app.models.declared import apply_fields, changed_fields, editable_values

ABSENT = object()  # a field a row leaves out: it keeps its value (a new job: the default), as in import_jobs


class _JobFileFormat:
    fmt = "json"

    def create_dataset(self, in_stream, **kwargs):
        text = in_stream.decode(self.encoding or "utf-8") if isinstance(in_stream, bytes) else in_stream
        dataset = tablib.Dataset(headers=list(job_files.FILE_FIELDS))
        for row in job_files.parse(text):
            dataset.append([row.get(field, ABSENT) for field in job_files.FILE_FIELDS])
        return dataset

    def export_data(self, dataset, **kwargs):
        return job_files.dump([dict(row) for row in dataset.dict], self.fmt)


class JobJSON(_JobFileFormat, JSON):
    fmt = "json"


class JobYAML(_JobFileFormat, YAML):
    fmt = "yaml"


class JobResource(resources.ModelResource):
    class Meta:
        model = Job
        fields = job_files.FILE_FIELDS
        export_order = job_files.FILE_FIELDS
        import_id_fields = ("name",)
        skip_unchanged = True
        report_skipped = True
        use_transactions = True

    def import_instance(self, instance, row, **kwargs):
        apply_fields(instance, {k: v for k, v in row.items() if k in job_files.FILE_FIELDS and v is not ABSENT})

    def skip_row(self, instance, original, row, import_validation_errors=None):
        if import_validation_errors:
            return False
        return not changed_fields(editable_values(original) if original.pk else {}, instance)

    def export_field(self, field, instance, **kwargs):
        return job_files.plain_value(getattr(instance, field.attribute))

    def filter_export(self, queryset, **kwargs):
        return queryset.order_by("name")


class JobFilesAdmin(ImportMixin, ExportActionMixin):
    """The job admin's import page and "Export selected jobs" action."""

    resource_classes = [JobResource]
    import_formats = export_formats = [JobJSON, JobYAML]
    change_form_template = None  # the job page keeps its own template (ExportActionMixin would replace it)
    show_change_form_export = False

    def has_import_permission(self, request):
        return self.has_add_permission(request) and self.has_change_permission(request)

    def has_export_permission(self, request):
        return self.has_view_permission(request)

    def get_valid_export_item_pks(self, request):
        # The library still calls this for the action's export (and warns in its own version).
        return Job.objects.values_list("pk", flat=True)

    def get_import_data_kwargs(self, **kwargs):
        # Confirming applies all rows or none, as import_jobs does (the preview showed no errors).
        return {**super().get_import_data_kwargs(**kwargs), "rollback_on_validation_errors": True}

    def add_data_read_fail_error_to_form(self, form, e):
        reason = str(e) if isinstance(e, TaskhubError) else f"not a file of jobs ({type(e).__name__})"
        form.add_error("import_file", reason)
