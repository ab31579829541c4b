"""Every exception taskhub raises on purpose, all derived from ``TaskhubError``.

``str(exc)`` is one readable line for a person and never holds a secret: commands print it
as their one line, the admin shows it as a field or page error, the API returns it.
``except TaskhubError`` catches any of them; the value errors are also ``ValueError`` and an
unknown handler also a ``LookupError``, as before, for code that caught those.

What it is not: an error of a handler's own is never wrapped here — a run records it with
its traceback (``HandlerFailed`` only says an ad-hoc call failed).
"""

__all__ = [
    "AlertDeliveryError",
    "DeclarationError",
    "EngineUnavailable",
    "HandlerError",
    "HandlerFailed",
    "KwargsError",
    "RunRefused",
    "ScheduleError",
    "SecretUnreadable",
    "SignatureError",
    "TaskFailed",
    "TaskhubError",
    "Unhealthy",
    "UnknownHandler",
    "Unstorable",
]


class TaskhubError(Exception):
    """The base of every taskhub exception."""


# -- handlers ---------------------------------------------------------------------------------
class HandlerError(TaskhubError):
    """A handler cannot be registered (or its module cannot be imported)."""


class UnknownHandler(TaskhubError, LookupError):
    """No handler is registered under that name or alias."""


class KwargsError(TaskhubError, ValueError):
    """kwargs do not fit the handler's signature; ``errors`` maps parameter (or ``__all__``) -> message.

    ``str(exc)`` is for people: a message about the kwargs as a whole first, without a key, then
    ``name: message`` for each parameter (``kwargs must be a JSON object``, ``x: missing; y: missing``),
    a name that is not a plain word quoted (``'my key': unknown parameter``).
    """

    def __init__(self, errors: dict[str, str]):
        super().__init__(errors)
        self.errors = dict(sorted(errors.items()))

    def __str__(self) -> str:
        whole = [message for name, message in self.errors.items() if name == "__all__"]
        named = [f"{_shown(name)}: {message}" for name, message in self.errors.items() if name != "__all__"]
        return "; ".join(whole + named)


def _shown(name: str) -> str:
    """A parameter name as a person reads it: quoted when it is not a plain word (``''``, ``'\\n'``)."""
    return name if name.isidentifier() else repr(name)


class Unstorable(TaskhubError, ValueError):
    """The value cannot be taken; ``errors`` maps a parameter (or ``__all__``) to why."""

    def __init__(self, errors: dict[str, str]):
        super().__init__(errors)
        self.errors = errors


# -- schedules and jobs -----------------------------------------------------------------------
class ScheduleError(TaskhubError, ValueError):
    """Bad schedule input; ``str(exc)`` is one readable line naming the problem."""


class DeclarationError(TaskhubError):
    """A declared job (``TASKHUB["JOBS"]``) that cannot be stored; str(exc) is one line."""


# -- runs -------------------------------------------------------------------------------------
class RunRefused(TaskhubError):
    """A run that may not be requested now; str(exc) is one line for a person."""


class EngineUnavailable(TaskhubError):
    """The run was queued but nothing will execute it now; str(exc) says why, for a person.

    ``run`` is the queued run when there is one: the caller says it is queued instead of
    pretending it runs.
    """

    def __init__(self, message: str, run=None):
        super().__init__(message)
        self.run = run


class HandlerFailed(TaskhubError):
    """An ad-hoc handler call did not succeed; str(exc) names the handler and the last error line."""


class TaskFailed(TaskhubError):
    """An ad-hoc Celery call failed or was revoked; str(exc) has the id, the state and the handler's error."""

    def __init__(self, task_id: str, state: str, error: BaseException):
        detail = str(error) if isinstance(error, HandlerFailed) else f"{type(error).__name__}: {error}"
        super().__init__(f"task {task_id} {state}: {detail}")
        self.task_id, self.state = task_id, state


# -- monitoring and the API -------------------------------------------------------------------
class Unhealthy(TaskhubError):
    """A health check's own verdict, for a person: reported as its message alone, without the exception's name."""


class SignatureError(TaskhubError):
    """A request's signature headers are missing, malformed, stale or wrong; str(exc) is one line."""


class SecretUnreadable(TaskhubError):
    """A stored API secret cannot be decrypted: ``SECRET_KEY`` changed without a fallback."""


class AlertDeliveryError(TaskhubError):
    """An alert that did not go out this time (SMTP, HTTP, timeout): the outbox retries it."""
