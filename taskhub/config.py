"""Configuration from the environment, twelve-factor.

Values are looked up in the process environment first, then in ``.env``, then in
``.secrets`` (both beside ``manage.py``, paths overridable with ``TASKHUB_ENV_FILE`` and
``TASKHUB_SECRETS_FILE``). A value written as ``enc:<token>`` is decrypted with the
Fernet key in ``TASKHUB_SECRETS_KEY``. Every mistake raises :class:`ConfigError` with
one line that names the setting and never shows a secret; ``settings.py`` turns it
into a clean exit.
"""

import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import environ
from cryptography.fernet import Fernet, InvalidToken
from django.core.exceptions import ImproperlyConfigured

ENCRYPTED_PREFIX = "enc:"
KEY_VARIABLE = "TASKHUB_SECRETS_KEY"


class ConfigError(Exception):
    """A configuration mistake, stated in one line that is safe to print."""


class Env(environ.Env):
    """django-environ over an explicit mapping, with one-line errors."""

    def __init__(self, mapping: Mapping[str, str]):
        super().__init__()
        self.ENVIRON = dict(mapping)

    def float(self, var, default=environ.Env.NOTSET):
        """A finite number as Python writes one: django-environ's own float strips every other character,
        so ``1e100`` would read as 1100, ``10s`` as 10 and ``0x10`` as 10."""
        return self.get_value(var, cast=finite_float, default=default)

    def get_value(self, var, cast=None, default=environ.Env.NOTSET, parse_default=False):
        # django-environ reads a value "$NAME" as NAME's value, through this same method: only the
        # outermost call (the setting asked for) turns what went wrong into one line.
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            return super().get_value(var, cast=cast, default=default, parse_default=parse_default)
        except (RecursionError, ImproperlyConfigured, ValueError, TypeError) as exc:
            if self._depth > 1:
                raise
            raise self._error(var, cast, exc) from None
        finally:
            self._depth -= 1

    def _error(self, var, cast, exc: Exception) -> ConfigError:
        raw = self.ENVIRON.get(var)
        if isinstance(exc, RecursionError):  # X=$X, or X=$Y with Y=$X: the references go round for ever
            return ConfigError(f"{var} refers to itself: a value starting with $ names another variable")
        if isinstance(raw, str) and raw.startswith("$") and isinstance(exc, ImproperlyConfigured):
            return ConfigError(f"{var} starts with $, so it names another variable, and that one is not set")
        if isinstance(exc, ImproperlyConfigured):
            return ConfigError(str(exc))
        return ConfigError(f"{var} has a value that is not a valid {getattr(cast, '__name__', cast)}")


def finite_float(value) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(value)
    return number


finite_float.__name__ = "float"  # so a bad value reads "not a valid float"


def read_env_file(path: Path) -> dict[str, str]:
    """Parse one dotenv file with django-environ's parser; a missing file is empty."""

    class _Reader(environ.Env):
        ENVIRON: dict[str, str] = {}

    if path.is_file():
        _Reader.read_env(path, overwrite=True)
    return _Reader.ENVIRON


def merged_environ(base_dir: Path, process_env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The environment over ``.env`` over ``.secrets``."""
    env_file = Path(process_env.get("TASKHUB_ENV_FILE") or base_dir / ".env")
    secrets_file = Path(process_env.get("TASKHUB_SECRETS_FILE") or base_dir / ".secrets")
    merged = read_env_file(secrets_file)
    merged.update(read_env_file(env_file))
    merged.update(process_env)
    return merged


def decrypt_values(mapping: Mapping[str, str]) -> dict[str, str]:
    """Replace every ``enc:<token>`` value by its plaintext, or fail naming the variable."""
    encrypted = sorted(k for k, v in mapping.items() if v.startswith(ENCRYPTED_PREFIX))
    if not encrypted:
        return dict(mapping)
    fernet = fernet_from(mapping.get(KEY_VARIABLE, ""), needed_by=encrypted[0])
    plain = dict(mapping)
    for name in encrypted:
        token = mapping[name][len(ENCRYPTED_PREFIX) :].strip()
        try:
            plain[name] = fernet.decrypt(token.encode()).decode()
        except (InvalidToken, ValueError):
            raise ConfigError(
                f"{name} cannot be decrypted: the token is corrupt or {KEY_VARIABLE} is not the key "
                "it was encrypted with"
            ) from None
    return plain


def fernet_from(key: str, needed_by: str = "") -> Fernet:
    if not key:
        reason = f" ({needed_by} is encrypted)" if needed_by else ""
        raise ConfigError(f"{KEY_VARIABLE} is not set{reason}")
    try:
        return Fernet(key.strip().encode())
    except (ValueError, TypeError):
        raise ConfigError(f"{KEY_VARIABLE} is not a valid Fernet key (32 url-safe base64-encoded bytes)") from None


def encrypt(value: str, key: str) -> str:
    """The ``enc:<token>`` form of ``value`` under ``key``."""
    return ENCRYPTED_PREFIX + fernet_from(key).encrypt(value.encode()).decode()


def load_env(base_dir: Path, process_env: Mapping[str, str] = os.environ) -> Env:
    return Env(decrypt_values(merged_environ(base_dir, process_env)))


def secret_key(env: Env, debug: bool) -> str:
    key = env.str("SECRET_KEY", default="")
    if key:
        return key
    if debug:
        return "insecure-development-key-only-used-with-DEBUG-on"
    raise ConfigError("SECRET_KEY is not set: put it in the environment, .env or .secrets (required when DEBUG is off)")


def database(env: Env, base_dir: Path) -> dict:
    """``DATABASE_URL`` when set (Postgres: persistent, health-checked); else a SQLite file."""
    url = env.str("DATABASE_URL", default="")
    if not url:
        return sqlite_database(env.path("TASKHUB_SQLITE_PATH", default=str(base_dir / "db.sqlite3")))
    try:
        with warnings.catch_warnings():  # an unknown scheme is reported below, in one line
            warnings.simplefilter("ignore")
            config = environ.Env.db_url_config(url)
    except Exception:  # django-environ raises several types for a malformed URL
        raise ConfigError("DATABASE_URL is not a valid database URL") from None
    engine = config.get("ENGINE", "")
    if engine == "django.db.backends.sqlite3":
        return sqlite_database(config["NAME"])
    if engine != "django.db.backends.postgresql":
        raise ConfigError("DATABASE_URL must be a postgres:// URL (or unset for the SQLite default)")
    config["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    config["CONN_HEALTH_CHECKS"] = True
    config.setdefault("OPTIONS", {}).setdefault("connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=5))
    return config


def sqlite_database(path) -> dict:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        "OPTIONS": {
            # WAL lets the web, the scheduler and the workers read while one writes;
            # IMMEDIATE + timeout make writers queue instead of failing with "locked".
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
    }
