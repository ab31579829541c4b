"""taskhub's own settings: the ``TASKHUB`` dict in Django settings over these defaults."""

from django.conf import settings

DEFAULTS = {
    "HANDLER_MODULES": ["tasks_app.handlers.bundled"],
    # Jobs declared in code, upserted by `manage.py sync_jobs`: a list of dicts of Job fields.
    "JOBS": [],
    # Modules whose Django ``@task`` functions may run (tasks_app.django_tasks): each is a handler too.
    "TASK_MODULES": [],
    # Which engine class serves each value of Job.engine.
    "ENGINES": {
        "celery": "tasks_app.engines.celery.CeleryEngine",
        "apscheduler": "tasks_app.engines.apscheduler.APSchedulerEngine",
    },
    # Health checks that must pass for /healthz to answer 200; the others are reported only.
    "HEALTH_REQUIRED": ["database"],
    # Seconds a health check may take before it counts as failed (the whole answer stays under 1 s).
    "HEALTH_TIMEOUT": 0.8,
    # A running run whose heartbeat is older than this is taken to be lost and may be taken over.
    "STALE_AFTER_SECONDS": 60,
    # A run whose worker was lost this many times (no heartbeat, process gone) is failed, not taken over again.
    "MAX_LOST_ATTEMPTS": 3,
    # A queued run still queued this long after it was due has lost its delivery: its engine sends it again.
    "REDELIVER_AFTER_SECONDS": 60,
    # How often a running run writes its heartbeat and progress, and checks for a cancel request.
    "HEARTBEAT_SECONDS": 1.0,
    # Slots of one tick whose jobs share queue, priority and time limits that beat packs into one
    # message (one claim, run side by side in one worker process); 1 = a message per slot.
    "BEAT_BATCH_SIZE": 50,
    # The longest beat sleeps between looks at the change marker (without Postgres NOTIFY).
    "BEAT_MAX_INTERVAL": 0.5,
    # A scheduler whose leader has not written its heartbeat for this long counts as down.
    "SCHEDULER_STALE_SECONDS": 30,
    # One leader per scheduler (off only to test the slot claim with several active schedulers).
    "LEADER_LOCK": True,
    # Threads of the runapscheduler process that run fires.
    "APSCHEDULER_WORKERS": 10,
    # Seconds in-flight runs may finish after SIGTERM before they are cancelled.
    "SHUTDOWN_GRACE_SECONDS": 30,
    # The runner's claim and outcome statements prepared on the server once per connection
    # (runner/prepared.py); False behind a pooler that cannot keep them (PgBouncer < 1.22 in transaction mode).
    "PREPARED_STATEMENTS": True,
    # How long a finished run keeps trying to store its outcome while the database is away.
    "OUTCOME_RETRY_SECONDS": 120,
    # Upper bound of one retry delay; stays below the broker's visibility timeout.
    "MAX_RETRY_DELAY_SECONDS": 3600,
    # Kwargs nested deeper than this many objects and lists (the kwargs object is level 1) are refused.
    "KWARGS_MAX_DEPTH": 32,
    # Kwargs longer than this many bytes of JSON (UTF-8) are refused.
    "KWARGS_MAX_BYTES": 65536,
    # Defaults for new jobs.
    "DEFAULT_MISFIRE_GRACE_SECONDS": 300,
    "RUN_RETENTION_DAYS": 30,
    # The bearer token /metrics asks for; empty: /metrics answers loopback clients only.
    "METRICS_TOKEN": "",
    # Behind a reverse proxy (TASKHUB_BEHIND_PROXY): every request comes from it, so /metrics needs the token.
    "BEHIND_PROXY": False,
    # Alerts (tasks_app/alerts/): recipients besides ADMINS and each job's own, the webhook and its
    # HMAC key (unset: calls are not signed), how often the engine processes deliver and look for
    # overdue jobs (0: they do not), the per-message timeout, attempts and first retry delay.
    "ALERT_EMAILS": [],
    "ALERT_WEBHOOK_URL": "",
    "ALERT_WEBHOOK_SECRET": "",
    "ALERT_POLL_SECONDS": 5.0,
    "ALERT_OVERDUE_EVERY_SECONDS": 30.0,
    "ALERT_TIMEOUT_SECONDS": 10.0,
    "ALERT_MAX_ATTEMPTS": 6,
    "ALERT_RETRY_SECONDS": 30.0,
    "ALERT_BATCH_SIZE": 20,
    "ALERT_DIGEST_FROM": 3,  # this many due messages of one kind on one channel go as one digest (0: never)
    # Where people reach this taskhub (https://taskhub.example.com): alerts link to the job's admin page.
    "PUBLIC_URL": "",
}


def get(name: str):
    return getattr(settings, "TASKHUB", {}).get(name, DEFAULTS[name])


def kwargs_limits() -> tuple[int, int]:
    """(max depth, max bytes of JSON) that kwargs may have, wherever they come in."""
    return get("KWARGS_MAX_DEPTH"), get("KWARGS_MAX_BYTES")
