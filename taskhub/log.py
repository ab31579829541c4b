"""JSON-lines logging behind a queue, with the run's context on every record.

``configure`` is Django's ``LOGGING_CONFIG``: it puts one ``QueueHandler`` on the root
logger, and a ``QueueListener`` thread writes each record as one JSON object to the
console and, when ``TASKHUB_LOG_FILE`` is set, to a rotating file — so a slow disk
never blocks a handler, a request or the scheduler loop. The root logger's handlers are
ours alone (gunicorn's defaults would write each record twice); warnings and uncaught
exceptions become records too, so every line a process writes to its log is one JSON object.

``log_context(job=..., run=..., engine=..., attempt=...)`` sets context variables that
the :class:`ContextFilter` copies onto every record made inside it (asyncio tasks
inherit them).
"""

import atexit
import contextlib
import contextvars
import copy
import logging
import logging.handlers
import os
import queue
import sys
import threading
import traceback
from pathlib import Path

from pythonjsonlogger.json import JsonFormatter

from taskhub import log_stream

CONTEXT_FIELDS = ("job", "run", "engine", "attempt")
_context = {name: contextvars.ContextVar(f"taskhub_log_{name}", default=None) for name in CONTEXT_FIELDS}

_listener: logging.handlers.QueueListener | None = None
_settings: dict = {}


@contextlib.contextmanager
def log_context(**fields):
    """Attach ``fields`` (a subset of CONTEXT_FIELDS) to every record logged inside."""
    unknown = set(fields) - set(CONTEXT_FIELDS)
    if unknown:
        raise TypeError(f"unknown log context fields: {sorted(unknown)}")
    tokens = [(_context[name], _context[name].set(value)) for name, value in fields.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class ContextFilter(logging.Filter):
    def filter(self, record):
        for name, var in _context.items():
            value = var.get()
            if value is not None and not hasattr(record, name):
                setattr(record, name, value)
        return True


def json_formatter() -> JsonFormatter:
    return JsonFormatter(
        "%(levelname)s %(name)s %(message)s %(process)d",
        rename_fields={"levelname": "level", "name": "logger", "process": "pid"},
        timestamp="time",
    )


class _QueueHandler(logging.handlers.QueueHandler):
    """Queue a record with its message and traceback rendered, but kept apart.

    The stock ``prepare`` folds the traceback into ``message``; JSON logs keep it in
    its own ``exc_info`` field.
    """

    def prepare(self, record):
        record = copy.copy(record)
        record.message = record.getMessage()
        record.msg, record.args = record.message, None
        if record.exc_info:
            record.exc_text = record.exc_text or _plain.formatException(record.exc_info)
            record.exc_info = None
        return record


_plain = logging.Formatter()


def _output_handlers(settings: dict, in_child: bool = False) -> list[logging.Handler]:
    # The process's real stderr: Celery replaces sys.stderr in pool processes with a proxy
    # that logs what is written to it, which would feed every record back into the queue.
    console = logging.StreamHandler(sys.__stderr__ or sys.stderr)
    handlers: list[logging.Handler] = [console]
    path = settings.get("file")
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        if in_child:
            # A forked child (a Celery pool process) must not rotate the file its parent
            # rotates; it reopens the file when the parent has rotated it.
            handlers.append(logging.handlers.WatchedFileHandler(path, encoding="utf-8"))
        else:
            handlers.append(
                logging.handlers.RotatingFileHandler(
                    path,
                    maxBytes=settings.get("max_bytes", 10_000_000),
                    backupCount=settings.get("backup_count", 5),
                    encoding="utf-8",
                )
            )
    formatter = json_formatter()
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.handleError = _report_on_real_stderr
    return handlers


def _start(settings: dict, in_child: bool = False) -> None:
    global _listener
    records: queue.SimpleQueue = queue.SimpleQueue()
    queue_handler = _QueueHandler(records)
    queue_handler.addFilter(ContextFilter())
    root = logging.getLogger()
    # The root's handlers are ours alone: one another tool put there (gunicorn's
    # logconfig defaults, an earlier configure) would write every record a second time.
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(queue_handler)
    root.setLevel(settings.get("level", "INFO"))
    _listener = logging.handlers.QueueListener(
        records, *_output_handlers(settings, in_child), respect_handler_level=True
    )
    _listener.start()


def stop() -> None:
    """Flush what is queued and stop the writer thread."""
    global _listener
    log_stream.flush_all()  # what was printed to a redirected stdout/stderr, not yet logged
    if _listener is not None:
        _listener.stop()
        for handler in _listener.handlers:
            handler.close()
        _listener = None


@contextlib.contextmanager
def quiet_console():
    """Records made inside reach the log file (when one is set) but not the console.

    For a command whose output is its answer (``run_job``): what it ran logs as usual, and the
    run's history keeps the outcome. On the way out the records queued meanwhile are written
    (or not) before the console speaks again.
    """
    console = _listener.handlers[0] if _listener is not None else None
    if console is None:
        yield
        return
    console.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        stop()  # drains the queue under the quiet level
        _start(_settings)


def _restart_in_child() -> None:
    # The writer thread does not survive fork(): a child would queue records forever.
    global _listener
    if _listener is not None:
        _listener = None
        _start(_settings, in_child=True)


def configure(settings: dict) -> None:
    """Django's LOGGING_CONFIG callable; ``settings`` is the LOGGING dict."""
    global _settings
    stop()
    _settings = dict(settings or {})
    _start(_settings)
    # Django installed its DEFAULT_LOGGING first: route its loggers to the root's JSON too.
    for name in ("django", "django.server"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    for name, level in _settings.get("loggers", {}).items():
        logging.getLogger(name).setLevel(level)
    logging.captureWarnings(True)  # a warning is a record too, not loose lines on stderr
    sys.excepthook, threading.excepthook = _log_uncaught, _log_uncaught_in_thread


def _log_uncaught(kind, value, tb) -> None:
    """A crash is one record with its traceback, not loose lines between the JSON ones."""
    if issubclass(kind, KeyboardInterrupt):
        return sys.__excepthook__(kind, value, tb)
    if issubclass(kind, BrokenPipeError):  # `manage.py list_handlers | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return None
    logging.getLogger("taskhub").critical("uncaught exception", exc_info=(kind, value, tb))


def _log_uncaught_in_thread(args) -> None:
    if args.exc_type is SystemExit:
        return
    logging.getLogger("taskhub").critical(
        "uncaught exception in thread %s",
        getattr(args.thread, "name", "?"),
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )


def _report_on_real_stderr(record) -> None:
    # Handler.handleError writes to sys.stderr, which may be a LoggingStream: a handler that
    # keeps failing would log its own failure for ever.
    if logging.raiseExceptions:
        traceback.print_exc(file=sys.__stderr__)


os.register_at_fork(after_in_child=_restart_in_child)
atexit.register(stop)
