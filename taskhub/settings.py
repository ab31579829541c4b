"""Django settings for taskhub, read from the environment (see README: Settings).

Precedence: process environment, then ``.env``, then ``.secrets``. A configuration
mistake stops start-up with one line that names the setting.
"""

import sys
from pathlib import Path

from taskhub import alert_settings, broker_settings
from taskhub.config import ConfigError, database, load_env, secret_key

BASE_DIR = Path(__file__).resolve().parent.parent

try:
    env = load_env(BASE_DIR)
    DEBUG = env.bool("DEBUG", default=False)
    SECRET_KEY = secret_key(env, DEBUG)
    DATABASES = {"default": database(env, BASE_DIR)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        # The metrics' duplicate-claims index INCLUDEs a column for Postgres; SQLite builds it without, which is
        # fine, so its warning is noise in every first `bin/setup` and `migrate`.
        SILENCED_SYSTEM_CHECKS = ["models.W040"]

    # Alerts go to ADMINS, TASKHUB_ALERT_EMAILS and each job's own list (README: Alerts).
    globals().update(alert_settings.email(env))
    ADMINS = alert_settings.admins(env)
    DEFAULT_FROM_EMAIL = SERVER_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="taskhub@localhost")

    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
    CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

    # HTTPS hardening: TASKHUB_HTTPS=true turns all of it on; each one can be overridden.
    _https = env.bool("TASKHUB_HTTPS", default=False)
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=_https)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # container health checks speak plain HTTP
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=_https)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=_https)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if _https else 0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=_https)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=_https)
    _behind_proxy = env.bool("TASKHUB_BEHIND_PROXY", default=False)
    if _behind_proxy:
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

    TIME_ZONE = env.str("TIME_ZONE", default="UTC")
    REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
    CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
    # Redis: a visibility timeout; RabbitMQ: quorum queues, a delivery limit, publisher confirms.
    globals().update(broker_settings.celery(env, CELERY_BROKER_URL))

    LOGGING = {
        "level": env.str("TASKHUB_LOG_LEVEL", default="INFO").upper(),
        "file": env.str("TASKHUB_LOG_FILE", default=""),
        "max_bytes": env.int("TASKHUB_LOG_MAX_BYTES", default=10_000_000),
        "backup_count": env.int("TASKHUB_LOG_BACKUP_COUNT", default=5),
        # httpx logs each request's URL at INFO: an alert webhook's URL (Slack's) holds its secret.
        "loggers": {"django.db.backends": "INFO", "httpx": "WARNING"},
    }

    TASKHUB = {
        "HANDLER_MODULES": env.list("TASKHUB_HANDLER_MODULES", default=["tasks_app.handlers.bundled"]),
        "TASK_MODULES": env.list("TASKHUB_TASK_MODULES", default=[]),
        "HEALTH_REQUIRED": env.list("TASKHUB_HEALTH_REQUIRED", default=["database"]),
        "HEALTH_TIMEOUT": env.float("TASKHUB_HEALTH_TIMEOUT", default=0.8),
        "LEADER_LOCK": env.bool("TASKHUB_LEADER_LOCK", default=True),
        "KWARGS_MAX_DEPTH": env.int("TASKHUB_KWARGS_MAX_DEPTH", default=32),
        "KWARGS_MAX_BYTES": env.int("TASKHUB_KWARGS_MAX_BYTES", default=65536),
        "REDELIVER_AFTER_SECONDS": env.int("TASKHUB_REDELIVER_AFTER_SECONDS", default=60),
        "DEFAULT_MISFIRE_GRACE_SECONDS": env.int("TASKHUB_DEFAULT_MISFIRE_GRACE_SECONDS", default=300),
        "RUN_RETENTION_DAYS": env.int("TASKHUB_RUN_RETENTION_DAYS", default=30),
        "STALE_AFTER_SECONDS": env.int("TASKHUB_STALE_AFTER_SECONDS", default=60),
        "MAX_LOST_ATTEMPTS": env.int("TASKHUB_MAX_LOST_ATTEMPTS", default=3),
        "BEAT_BATCH_SIZE": env.int("TASKHUB_BEAT_BATCH_SIZE", default=50),
        "PREPARED_STATEMENTS": env.bool("TASKHUB_PREPARED_STATEMENTS", default=True),
        "METRICS_TOKEN": env.str("TASKHUB_METRICS_TOKEN", default=""),
        "BEHIND_PROXY": _behind_proxy,
        "ALERT_EMAILS": alert_settings.addresses(env, "TASKHUB_ALERT_EMAILS"),
        "ALERT_WEBHOOK_URL": alert_settings.webhook_url(env),
        "ALERT_WEBHOOK_SECRET": env.str("TASKHUB_ALERT_WEBHOOK_SECRET", default=""),
        **alert_settings.numbers(env),
        "PUBLIC_URL": alert_settings.http_url(env, "TASKHUB_PUBLIC_URL"),
    }
    # Django's task framework (django-tasks): every @task of TASKHUB_TASK_MODULES runs on this engine.
    TASKS = {
        "default": {
            "BACKEND": "tasks_app.django_tasks.TaskhubBackend",
            "QUEUES": [],  # any queue name; a Celery worker consumes those it is given with -Q
            "OPTIONS": {"ENGINE": env.str("TASKHUB_TASKS_ENGINE", default="apscheduler")},
        }
    }
except ConfigError as exc:
    sys.exit(f"taskhub: configuration error: {exc}")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "import_export",  # the job admin's export action and import preview
    "django_celery_beat",
    "django_celery_results",
    "django_apscheduler",
    "django_tasks",
    "tasks_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "taskhub.urls"
WSGI_APPLICATION = "taskhub.wsgi.application"
ASGI_APPLICATION = "taskhub.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
USE_I18N = True
FORMAT_MODULE_PATH = ["taskhub.formats"]  # dates and times as ISO 8601 throughout the admin
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True  # the admin's assets are served without a collectstatic step

LOGGING_CONFIG = "taskhub.log.configure"

# --- Celery (namespace CELERY_, read by taskhub/celery.py) ---------------------------
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]  # never unpickle a message from the broker
CELERY_TIMEZONE = TIME_ZONE
CELERY_ENABLE_UTC = True
CELERY_BEAT_SCHEDULER = "tasks_app.engines.celery.beat:TaskhubScheduler"  # slots, leader lock, live edits
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # keep taskhub's JSON logging in workers
# A task is acknowledged after it ran, and re-queued if its worker process dies.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_DEFAULT_QUEUE = "default"  # Job.queue's default; a worker consumes it unless given -Q
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # a busy worker does not hoard messages others could run
# CELERY_BROKER_TRANSPORT_OPTIONS and the queue types depend on the broker: taskhub/broker_settings.py.
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_TIMEOUT = 4
# Celery's Django fixup closes every database connection around every task unless this is
# set, so each run would open a new Postgres session; the runner checks its connection
# (close_old_connections, CONN_MAX_AGE, health checks) around every run instead.
CELERY_DB_REUSE_MAX = 1000
