"""``sys.stdout`` / ``sys.stderr`` as log records: one record per burst of writes.

Celery redirects a worker's and beat's standard streams into logging, but its proxy makes
a record of every ``write()``, so one traceback printed by a library became one record per
line. :class:`LoggingStream` collects what is written until the stream is flushed or has
been quiet for a moment, then logs it as one record (with the writer's log context).

It is not a file: nothing is stored, and reading is not supported.
"""

import contextvars
import io
import logging
import os
import sys
import threading
import time

QUIET_SECONDS = 0.1  # a burst ends when nothing more was written for this long
MAX_AGE_SECONDS = 1.0  # ... or when its first write is this old
MAX_CHARS = 1_000_000  # ... or when it is this long

_streams: list["LoggingStream"] = []


class LoggingStream(io.TextIOBase):
    encoding = "utf-8"  # what code that checks sys.stderr.encoding may write

    def __init__(self, logger: logging.Logger, level: int, name: str):
        self.logger, self.level, self.stream_name = logger, level, name
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.RLock()  # re-entrant: a signal handler may write mid-write
        self._local = threading.local()
        self._parts: list[str] = []
        self._size, self._first, self._last = 0, 0.0, 0.0
        self._context: contextvars.Context | None = None
        self._wake = threading.Event()
        self._flusher: threading.Thread | None = None

    @property
    def name(self) -> str:
        return f"<{self.stream_name}>"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text) -> int:
        text = text if isinstance(text, str) else str(text)
        if getattr(self._local, "emitting", False):
            # A log handler reporting its own failure: logging it again would loop.
            return (sys.__stderr__ or sys.stderr).write(text)
        if text:
            with self._lock:
                if not self._parts:
                    self._context, self._first = contextvars.copy_context(), time.monotonic()
                self._parts.append(text)
                self._size += len(text)
                self._last = time.monotonic()
                full = self._size >= MAX_CHARS
            if full:
                self.flush()
            else:
                self._start_flusher()
        return len(text)

    def flush(self) -> None:
        with self._lock:
            text, context = "".join(self._parts).rstrip("\n"), self._context
            self._parts, self._size, self._context = [], 0, None
        if text.strip():
            context.run(self._emit, text)

    def _emit(self, text: str) -> None:
        self._local.emitting = True
        try:
            self.logger.log(self.level, text, extra={"stream": self.stream_name})
        finally:
            self._local.emitting = False

    def _start_flusher(self) -> None:
        self._wake.set()
        if self._flusher is None or not self._flusher.is_alive():
            self._flusher = threading.Thread(target=self._flush_when_quiet, name=f"log-{self.stream_name}", daemon=True)
            self._flusher.start()

    def _flush_when_quiet(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            while self._parts:
                now = time.monotonic()
                due = min(self._last + QUIET_SECONDS, self._first + MAX_AGE_SECONDS)
                if now >= due:
                    self.flush()
                else:
                    time.sleep(due - now)


def redirect(logger_name: str, level: int | str) -> None:
    """Replace ``sys.stdout`` and ``sys.stderr`` by streams that log to ``logger_name``."""
    level = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    logger = logging.getLogger(logger_name)
    flush_all()  # a second redirect (beat embedded in a worker) keeps what the first holds
    sys.stdout = LoggingStream(logger, level, "stdout")
    sys.stderr = LoggingStream(logger, level, "stderr")
    _streams[:] = [sys.stdout, sys.stderr]


def flush_all() -> None:
    for stream in _streams:
        stream.flush()


def _reset_in_child() -> None:
    # A forked child (a Celery pool process) has neither the parent's flusher thread nor,
    # perhaps, a usable lock: it starts empty.
    for stream in _streams:
        stream._reset()


os.register_at_fork(after_in_child=_reset_in_child)
