"""A saved or deleted job bumps the change marker (whose ``jobs_changed`` the engines hear)."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from tasks_app.models import Job, changes


@receiver(post_save, sender=Job, dispatch_uid="taskhub_job_saved")
@receiver(post_delete, sender=Job, dispatch_uid="taskhub_job_deleted")
def job_changed(sender, instance, using, **kwargs):
    changes.bump([instance.pk], using=using)
