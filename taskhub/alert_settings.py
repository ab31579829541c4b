"""The alert settings from the environment: e-mail (``EMAIL_URL``), recipients, the webhook.

Each mistake raises ``ConfigError`` with one line naming the variable (and never a secret):
an address that is not one, a webhook or public URL that is not ``http(s)://host…``, a number
out of its range (a timeout of 0 or less fails every send; a poll of 1e100 stops the courier).
"""

import math
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from taskhub.config import ConfigError, Env


def email(env: Env) -> dict:
    """Django's e-mail settings from ``EMAIL_URL`` (django-environ's form, e.g. ``smtp+tls://user:pass@host:587``).

    Unset: the console backend, which prints each message to the process's output.
    """
    url = env.str("EMAIL_URL", default="") or "consolemail://"  # empty (docker-compose passes it so) is unset
    try:
        config = environ.Env.email_url_config(url)
    except Exception:  # django-environ raises several types for a malformed URL
        raise ConfigError(
            "EMAIL_URL is not a valid e-mail URL (smtp://, smtp+tls://, smtps://, consolemail://, ...)"
        ) from None
    config["EMAIL_TIMEOUT"] = bounded(
        env, "EMAIL_TIMEOUT", 10, 1, 600, kind=int
    )  # a hanging SMTP server stalls no sender
    return config


def addresses(env: Env, name: str) -> list[str]:
    """A comma-separated list of e-mail addresses, each checked."""
    values = [value.strip() for value in env.list(name, default=[]) if value.strip()]
    for value in values:
        try:
            validate_email(value)
        except ValidationError:
            raise ConfigError(f"{name} holds '{value}', which is not an e-mail address") from None
    return values


def admins(env: Env) -> list[tuple[str, str]]:
    """``ADMINS`` from a comma-separated list of addresses (Django wants ``(name, address)`` pairs)."""
    return [(address, address) for address in addresses(env, "ADMINS")]


def webhook_url(env: Env) -> str:
    return http_url(env, "TASKHUB_ALERT_WEBHOOK_URL")


def http_url(env: Env, name: str) -> str:
    """An ``http(s)://host…`` URL, or empty when unset."""
    url = env.str(name, default="").strip()
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{name} must be an http:// or https:// URL with a host")
    return url


# name: (default, least, most, type); 0 is also allowed where it means "off" or "never".
NUMBERS = {
    "TASKHUB_ALERT_POLL_SECONDS": (5.0, 0.01, 3600, float),  # 0: no delivery in that process
    "TASKHUB_ALERT_OVERDUE_EVERY_SECONDS": (30.0, 0.1, 86400, float),
    "TASKHUB_ALERT_TIMEOUT_SECONDS": (10.0, 0.1, 600, float),
    "TASKHUB_ALERT_MAX_ATTEMPTS": (6, 1, 100, int),
    "TASKHUB_ALERT_DIGEST_FROM": (3, 1, 10_000, int),  # 0: never a digest
}
MAY_BE_ZERO = {"TASKHUB_ALERT_POLL_SECONDS", "TASKHUB_ALERT_DIGEST_FROM"}


def numbers(env: Env) -> dict:
    """The alert numbers by their ``TASKHUB`` key (``ALERT_POLL_SECONDS``, …), each within its range."""
    return {
        name.removeprefix("TASKHUB_"): bounded(env, name, default, least, most, kind, zero=name in MAY_BE_ZERO)
        for name, (default, least, most, kind) in NUMBERS.items()
    }


def bounded(env: Env, name: str, default, least, most, kind=float, zero: bool = False):
    value = env.int(name, default=default) if kind is int else env.float(name, default=default)
    if (zero and value == 0) or (math.isfinite(value) and least <= value <= most):
        return value
    allowed = f"0 or {least} to {most}" if zero else f"{least} to {most}"
    raise ConfigError(f"{name} must be {allowed} (it is {value!r})")
