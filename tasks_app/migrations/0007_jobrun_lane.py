"""Runs hold a lane (one of their job's ``max_running`` places) while they run; running runs are indexed."""

from django.db import migrations, models


def give_running_runs_lanes(apps, schema_editor):
    JobRun = apps.get_model("tasks_app", "JobRun")
    lanes: dict[int, int] = {}
    running = JobRun.objects.filter(status="running").order_by("job_id", "started_at", "pk").only("pk", "job_id")
    for run in running.iterator():
        lanes[run.job_id] = lanes.get(run.job_id, 0) + 1
        JobRun.objects.filter(pk=run.pk).update(lane=lanes[run.job_id])


class Migration(migrations.Migration):
    dependencies = [("tasks_app", "0006_job_misfire_grace_default_from_settings")]

    operations = [
        migrations.AddField(
            model_name="jobrun",
            name="lane",
            field=models.PositiveSmallIntegerField(
                blank=True,
                editable=False,
                help_text="Which of the job's max_running places a running run holds; empty once it ends.",
                null=True,
            ),
        ),
        migrations.RunPython(give_running_runs_lanes, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="jobrun",
            index=models.Index(condition=models.Q(("status", "running")), fields=["job"], name="jobrun_running"),
        ),
        migrations.AddConstraint(
            model_name="jobrun",
            constraint=models.UniqueConstraint(
                condition=models.Q(("lane__isnull", False)), fields=("job", "lane"), name="jobrun_one_run_per_lane"
            ),
        ),
    ]
