"""The channels' senders: each sends one outbox message (or a digest of several, all on one channel)
or raises ``AlertDeliveryError`` with one line.

``email`` goes through Django's mail (``EMAIL_URL``), ``webhook`` POSTs signed JSON with httpx.
Both are bounded by ``TASKHUB["ALERT_TIMEOUT_SECONDS"]``. What it is not: no retries and no
bookkeeping (``outbox.py`` does both).
"""

from tasks_app.alerts.delivery import email, webhook
from tasks_app.exceptions import AlertDeliveryError
from tasks_app.models import AlertChannel

SENDERS = {AlertChannel.EMAIL: email.send, AlertChannel.WEBHOOK: webhook.send}


def send(*batch) -> None:
    try:
        SENDERS[batch[0].channel](list(batch))
    except AlertDeliveryError:
        raise
    except Exception as exc:  # an SMTP or HTTP failure of any kind: the message is retried later
        raise AlertDeliveryError(" ".join(f"{type(exc).__name__}: {exc}".split())[:500]) from None
