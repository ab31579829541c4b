"""A saved or deleted job bumps the change marker (which also projects it into its engine)."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from tasks_app import changes
from tasks_app.models import Job


@receiver(post_save, sender=Job, dispatch_uid="taskhub_job_saved")
@receiver(post_delete, sender=Job, dispatch_uid="taskhub_job_deleted")
def job_changed(sender, instance, using, **kwargs):
    changes.bump([instance.pk], using=using)
