"""The Celery app: ``celery -A taskhub worker`` and ``celery -A taskhub beat``.

Configured from Django settings under the ``CELERY_`` namespace; JSON messages only.
"""

import logging
import os

from celery import Celery, signals
from kombu.transport import TRANSPORT_ALIASES

from taskhub import log_stream

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taskhub.settings")

# redis:// and rediss:// use kombu's Redis transport with a fix for workers that exited when
# Redis restarted under them (taskhub/redis_transport.py says what and why).
TRANSPORT_ALIASES.update(redis="taskhub.redis_transport:Transport", rediss="taskhub.redis_transport:Transport")

app = Celery("taskhub", amqp="taskhub.amqp:AMQP")  # a delivery limit on quorum queues
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()  # each installed app's tasks.py
app.autodiscover_tasks(["tasks_app.engines.celery"])  # taskhub's own: tasks_app/engines/celery/tasks.py


@signals.setup_logging.connect
def keep_taskhub_logging(loglevel=None, **kwargs):
    """Keep taskhub's JSON logging (Django's LOGGING_CONFIG) instead of Celery's own.

    Celery would add plain-text handlers, and log every write to stdout/stderr as its own
    record: one traceback a library printed became one record per line.
    """
    if loglevel:
        logging.getLogger().setLevel(loglevel)


@signals.celeryd_after_setup.connect
def redirect_worker_output(instance=None, **kwargs):
    if instance.redirect_stdouts:
        log_stream.redirect("celery.redirected", instance.redirect_stdouts_level)


@signals.beat_init.connect
def redirect_beat_output(**kwargs):
    if app.conf.worker_redirect_stdouts:
        log_stream.redirect("celery.redirected", app.conf.worker_redirect_stdouts_level)
