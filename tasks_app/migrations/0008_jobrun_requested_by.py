"""Runs record who asked for them (a person, or an API client whose name stays when it is deleted); help texts."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tasks_app", "0007_jobrun_lane"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="jobrun",
            options={"get_latest_by": "scheduled_for", "ordering": ["-scheduled_for"], "verbose_name": "run"},
        ),
        migrations.AddField(
            model_name="jobrun",
            name="api_client",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="runs",
                to="tasks_app.apiclient",
            ),
        ),
        migrations.AddField(
            model_name="jobrun",
            name="requested_by",
            field=models.CharField(
                blank=True,
                editable=False,
                help_text="Who asked for this run (a person or an API client); empty for a scheduled run.",
                max_length=200,
            ),
        ),
        migrations.AlterField(
            model_name="job",
            name="timezone",
            field=models.CharField(
                default="UTC", help_text="IANA time zone of the job's schedule and of the times shown.", max_length=64
            ),
        ),
        migrations.AddIndex(
            model_name="jobrun",
            index=models.Index(
                condition=models.Q(("api_client__isnull", False)), fields=["api_client"], name="jobrun_api_client"
            ),
        ),
    ]
