"""An alert by e-mail, through Django's mail (``EMAIL_URL``) to ``channels.recipients(job)``."""

from django.conf import settings
from django.core.mail import EmailMessage, get_connection

from tasks_app import conf
from tasks_app.alerts import messages
from tasks_app.alerts.channels import recipients
from tasks_app.exceptions import AlertDeliveryError


def send(batch: list) -> None:
    """One e-mail: the alert, or a digest of several that share their recipients (``outbox.py`` groups them)."""
    to = recipients(batch[0].job)
    if not to:
        raise AlertDeliveryError(
            "no recipients: ADMINS, TASKHUB_ALERT_EMAILS and the job's alert e-mails are all empty"
        )
    subject, body = messages.email(batch[0]) if len(batch) == 1 else messages.digest_email(batch)
    connection = get_connection(fail_silently=False, timeout=conf.get("ALERT_TIMEOUT_SECONDS"))
    EmailMessage(subject, body, settings.DEFAULT_FROM_EMAIL, to, connection=connection).send()
