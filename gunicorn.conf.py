"""gunicorn reads this from the working directory: its own log lines as JSON too.

gunicorn also gives the root logger a console handler; when Django starts in a worker,
``taskhub.log.configure`` replaces it, so each app record is written once (test_logging).
"""

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "taskhub.log.json_formatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
    "loggers": {
        "gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
accesslog = "-"
