"""Where a job's alerts go: the e-mail recipients and the webhook, from the settings and the job."""

from django.conf import settings

from tasks_app import conf
from tasks_app.models import AlertChannel, Job
from tasks_app.models import recipients as job_recipients


def recipients(job: Job) -> list[str]:
    """``ADMINS``, then ``TASKHUB_ALERT_EMAILS``, then the job's own addresses; each once."""
    addresses = [address for _, address in settings.ADMINS]
    addresses += conf.get("ALERT_EMAILS")
    addresses += job_recipients.split(job.alert_emails)
    return list(dict.fromkeys(a.strip() for a in addresses if a.strip()))


def channels_for(job: Job) -> list[str]:
    """The channels a message about ``job`` goes out on now (none configured: none, and nothing is written)."""
    channels = []
    if recipients(job):
        channels.append(AlertChannel.EMAIL)
    if conf.get("ALERT_WEBHOOK_URL"):
        channels.append(AlertChannel.WEBHOOK)
    return channels
