"""The Celery app: ``celery -A taskhub worker`` and ``celery -A taskhub beat``.

Configured from Django settings under the ``CELERY_`` namespace; JSON messages only.
"""

import os

from celery import Celery
from kombu.transport import TRANSPORT_ALIASES

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taskhub.settings")

# redis:// and rediss:// use kombu's Redis transport with a fix for workers that exited when
# Redis restarted under them (taskhub/redis_transport.py says what and why).
TRANSPORT_ALIASES.update(redis="taskhub.redis_transport:Transport", rediss="taskhub.redis_transport:Transport")

app = Celery("taskhub")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
