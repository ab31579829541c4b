"""Health of taskhub's dependencies: each check runs in a thread with a deadline.

A check is a function that returns a small dict of details or raises; register one
with ``@check("name")``. ``report()`` runs them all at once and answers within the
``HEALTH_TIMEOUT`` setting however long a dependency hangs; a check that has not
answered by then counts as failed. ``HEALTH_REQUIRED`` names the checks that decide
the overall status; the others are reported only.
"""

import re
import time
from concurrent.futures import ThreadPoolExecutor, wait
from functools import cache
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
from django.conf import settings
from django.db import connection
from kombu import Connection

from tasks_app import conf
from tasks_app.exceptions import Unhealthy

CHECKS = {}
_SECRET_KEYS = re.compile(r"pass|secret|token|key|auth|cred", re.IGNORECASE)  # query parameters worth hiding


def check(name):
    def register(func):
        CHECKS[name] = func
        return func

    return register


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=8, thread_name_prefix="healthcheck")


def _timed(func):
    started = time.perf_counter()
    try:
        detail = func() or {}
        return {"ok": True, **detail, "ms": round((time.perf_counter() - started) * 1000, 1)}
    except Exception as exc:  # a failing dependency is a result, not an error
        text = str(exc) if isinstance(exc, Unhealthy) else f"{type(exc).__name__}: {exc}"
        return {
            "ok": False,
            "error": _scrub(" ".join(text.split()))[:300],
            "ms": round((time.perf_counter() - started) * 1000, 1),
        }


def submit(check_function):
    """Run one check function on the health pool; the future's result is its timed outcome."""
    return _pool().submit(_timed, check_function)


def report(names=None) -> dict:
    """``{"healthy": bool, "checks": {name: {"ok", "required", "ms", ...}}}``.

    With ``names``, only those checks run and all of them are required.
    """
    required = set(names or conf.get("HEALTH_REQUIRED"))
    names = [n for n in (names or CHECKS) if n in CHECKS]
    timeout = conf.get("HEALTH_TIMEOUT")
    futures = {name: submit(CHECKS[name]) for name in names}
    wait(futures.values(), timeout=timeout)
    checks = {}
    for name, future in futures.items():
        if future.done():
            checks[name] = future.result()
        else:
            checks[name] = {"ok": False, "error": f"no answer within {timeout:g} s", "ms": round(timeout * 1000, 1)}
        checks[name]["required"] = name in required
    unknown = required - set(CHECKS)
    for name in sorted(unknown):
        checks[name] = {"ok": False, "required": True, "error": "no such health check"}
    healthy = all(c["ok"] for c in checks.values() if c["required"]) and not unknown
    return {"healthy": healthy, "checks": checks}


@check("database")
def database():
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"vendor": connection.vendor}
    finally:
        connection.close()  # this pool thread gets no request_finished signal


@check("broker")
def broker():
    url = settings.CELERY_BROKER_URL
    timeout = conf.get("HEALTH_TIMEOUT")
    if url.startswith(("redis://", "rediss://", "unix://")):
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()
    else:
        with Connection(url, connect_timeout=timeout) as connection:  # amqp:// (RabbitMQ) and the rest
            connection.ensure_connection(max_retries=0)  # one attempt: a closed port says so, not a timeout
    return {"url": public_address(url)}


def public_address(url: str) -> str:
    """Scheme, host and port of each URL in ``url`` (kombu joins failover URLs with ";").

    /healthz is anonymous: no user, password, path (a vhost, a socket) or query (``?password=``) is shown.
    """
    return ";".join(_address(one.strip()) for one in url.split(";") if one.strip()) or "(unreadable)"


def _address(url: str) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:  # a malformed IPv6 host
        return "(unreadable)"
    if not parts.scheme or "://" not in url:
        return "(unreadable)"
    host = f"[{host}]" if ":" in host else host
    try:
        port = parts.port
    except ValueError:  # not a number: it is not an address, and it could be anything
        port = None
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def _scrub(text: str) -> str:
    """``text`` without any secret piece of the broker URL: a check's error can quote its settings."""

    for url in str(getattr(settings, "CELERY_BROKER_URL", "") or "").split(";"):
        try:
            parts = urlsplit(url.strip())
            pieces = [
                parts.username,
                parts.password,
                *(value for key, value in parse_qsl(parts.query) if _SECRET_KEYS.search(key)),
            ]
        except ValueError:  # unparseable: hide it whole, wherever it is quoted
            pieces = [url.strip()]
        # Longest first; very short pieces (a user "u") would mangle the message, not hide anything.
        for piece in sorted((p for p in pieces if p and len(p) >= 3), key=len, reverse=True):
            for form in {piece, unquote(piece)}:
                text = text.replace(form, "***")
    return text


@check("workers")
def workers():
    """At least one Celery worker answers a ping; the first reply ends the wait."""
    return ping_workers(window=conf.get("HEALTH_TIMEOUT") / 2, limit=1)


def ping_workers(window: float, limit: int | None = None) -> dict:
    """``{"workers": [names]}``: the Celery workers that answer a ping within ``window`` seconds.

    Stops after ``limit`` replies when given. Raises when the broker is down or no worker answers.
    """
    from taskhub.celery import app  # the project's Celery app: built on first import, so only when a check runs

    # polling_interval: Redis's BRPOP wait, which closing the connection sits out (1 s by default);
    # the socket timeouts bound a broker that accepts connections and never answers.
    options = {"polling_interval": window, "socket_connect_timeout": window / 2, "socket_timeout": window}
    with app.connection_for_write(
        settings.CELERY_BROKER_URL, connect_timeout=window / 2, transport_options=options
    ) as broker:
        broker.ensure_connection(max_retries=0)  # a dead broker fails now, not after kombu's retries
        deadline, replies = time.monotonic() + window, {}
        # A late reply to an earlier ping can land in this one's reply queue and use up ``limit``;
        # a ping that ends early with no reply read such a one, so it asks again for the time left.
        while not replies and (left := deadline - time.monotonic()) > 0:
            replies = app.control.inspect(timeout=left, limit=limit, connection=broker).ping() or {}
    if not replies:
        raise Unhealthy(f"no worker answered a ping within {window:g} s")
    return {"workers": sorted(replies)}
