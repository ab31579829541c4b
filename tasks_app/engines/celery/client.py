"""Ad-hoc handler calls on Celery: send, compose and follow them by handler name.

What it is: the client side of the ``taskhub.run_handler`` task, in handler terms. A call
names a registered handler and its JSON kwargs; both are checked against the registry
*before* anything is sent (``registry.UnknownHandler`` / ``registry.KwargsError``, and
nothing reaches the broker). Results, states and errors come from django-celery-results
(``CELERY_RESULT_BACKEND = "django-db"``)::

    from tasks_app.engines.celery import client

    task_id = client.submit("number_sum", {"x": 2, "y": 3}, countdown=10)
    client.result(task_id, timeout=30)                        # 5
    client.chain(client.call("sleep", {"seconds": 1}), client.call("number_sum", {"x": 1, "y": 1}))
    group_id = client.group(*(client.call("number_sum", {"x": n, "y": n}) for n in range(3)))
    client.result(group_id)                                   # [0, 2, 4]
    client.chord([client.call("number_sum", {"x": 1, "y": 2})], client.call_with_results("total"))

How results flow: ``call()`` is an immutable signature, so a chain of calls runs them in
order (each after the previous one succeeded; the first failure stops the chain) and
passes nothing along. ``call_with_results(handler, kwargs)`` receives what ran before it
as its ``results`` keyword: the list of header results (in header order) as a chord's
body, the previous result as a later link of a chain. Its handler declares ``results``.
Every function that takes an id takes a group's id too (``result`` gives the list).

What it is not: no job, no run history (``JobRun``), no retries, no slot. Anything
scheduled, or that must be on record, is a ``Job``; an ad-hoc call is a Celery task.

Limits: the calling process must have loaded the handler modules (any Django process
has: ``AppConfig.ready``). ``status`` cannot tell an unknown id from a queued one (both
``PENDING``) and shows ``STARTED`` only with ``CELERY_TASK_TRACK_STARTED`` on. ``revoke``
is a broadcast to the workers running now: they mark the task ``REVOKED`` and drop it when
it comes, but keep the revoke in memory only (``--statedb`` keeps it over a restart);
with no worker up, nothing records it and the next worker runs the task.
"""

import time

import celery
from celery.exceptions import TimeoutError as CeleryTimeout
from celery.result import AsyncResult, GroupResult

from tasks_app.engines.celery.tasks import RESULTS, run_handler, run_handler_with_results
from tasks_app.exceptions import TaskFailed
from tasks_app.handlers.registry import KwargsError, registry


# -- calls ------------------------------------------------------------------------------------
def call(handler: str, kwargs: dict | None = None) -> celery.Signature:
    """An immutable ``taskhub.run_handler`` signature, checked now; compose it with chain/group/chord."""
    kwargs = {} if kwargs is None else kwargs
    spec = registry.get(handler)
    spec.validate_kwargs(kwargs)
    return run_handler.si(handler=spec.name, kwargs=kwargs)


def call_with_results(handler: str, kwargs: dict | None = None) -> celery.Signature:
    """A call whose handler also gets ``results``: a chord's header results, or a chain's previous result."""
    kwargs = {} if kwargs is None else kwargs
    spec = registry.get(handler)
    if isinstance(kwargs, dict) and RESULTS in kwargs:
        raise KwargsError({RESULTS: "is supplied by the calls before it, not by kwargs"})
    if not spec.accepts_extra and RESULTS not in {p.name for p in spec.params}:
        raise KwargsError({RESULTS: f"handler {spec.name!r} must declare a parameter {RESULTS!r} to receive them"})
    try:
        spec.validate_kwargs({**kwargs, RESULTS: None} if isinstance(kwargs, dict) else kwargs)
    except KwargsError as exc:  # the real results are checked by the worker
        if set(exc.errors) - {RESULTS}:
            raise KwargsError({k: v for k, v in exc.errors.items() if k != RESULTS}) from None
    return run_handler_with_results.s(handler=spec.name, kwargs=kwargs)


def submit(
    handler: str,
    kwargs: dict | None = None,
    *,
    queue: str | None = None,
    countdown: float | None = None,
    eta=None,
    priority: int | None = None,
) -> str:
    """Send one call; the Celery task id."""
    options = {"queue": queue, "countdown": countdown, "eta": eta, "priority": priority}
    return call(handler, kwargs).apply_async(**{k: v for k, v in options.items() if v is not None}).id


def chain(*calls: celery.Signature) -> str:
    """Run calls one after another; the id is the last call's (``result`` gives its result)."""
    _check(calls, "chain", results_after_first=True)
    return celery.chain(*calls).apply_async().id


def group(*calls: celery.Signature) -> str:
    """Run calls in parallel; the id of the saved GroupResult (``result`` gives the list)."""
    _check(calls, "group")
    sent = celery.group(calls).apply_async()
    sent.save()  # so that result(), status() and revoke() can restore it by id
    return sent.id


def chord(header_calls, body_call: celery.Signature) -> str:
    """Run the header calls in parallel, then the body with their results; the id is the body's."""
    header = list(header_calls)
    _check(header, "chord header")
    if not _with_results(body_call):
        raise TypeError("a chord body must be call_with_results(handler, kwargs): it receives the header results")
    return celery.chord(header, body_call).apply_async().id


def _check(calls, what: str, results_after_first: bool = False) -> None:
    """Only our calls, and a call_with_results only where something runs before it."""
    if not calls:
        raise ValueError(f"a {what} needs at least one call")
    for position, sig in enumerate(calls):
        if not (_with_results(sig) or (isinstance(sig, celery.Signature) and sig.task == run_handler.name)):
            raise TypeError(f"a {what} takes call(...) or call_with_results(...) signatures, not {sig!r}")
        if _with_results(sig) and not (results_after_first and position > 0):
            raise TypeError(
                f"call_with_results({sig.kwargs['handler']!r}) has no results to receive "
                f"at position {position} of a {what}"
            )


def _with_results(sig) -> bool:
    return isinstance(sig, celery.Signature) and sig.task == run_handler_with_results.name


# -- following them ---------------------------------------------------------------------------
def result(task_id: str, timeout: float | None = None):
    """The call's return value (a group's: the list, in call order); else ``TaskFailed`` or ``TimeoutError``."""
    deadline = None if timeout is None else time.monotonic() + timeout
    group_result = GroupResult.restore(task_id)
    if group_result is not None:
        return [_value(child, deadline, timeout) for child in group_result.results]
    return _value(AsyncResult(task_id), deadline, timeout)


def status(task_id: str) -> str:
    """PENDING, STARTED, SUCCESS, FAILURE, RETRY or REVOKED; a group's is its worst child's."""
    group_result = GroupResult.restore(task_id)
    if group_result is None:
        return AsyncResult(task_id).state
    states = [child.state for child in group_result.results]
    return next((s for s in ("FAILURE", "REVOKED", "RETRY", "STARTED", "PENDING") if s in states), "SUCCESS")


def revoke(task_id: str, terminate: bool = False) -> None:
    """Tell the running workers not to run it (``terminate``: stop it if it runs now)."""
    group_result = GroupResult.restore(task_id)
    (AsyncResult(task_id) if group_result is None else group_result).revoke(terminate=terminate)


def _value(async_result: AsyncResult, deadline: float | None, timeout: float | None):
    # Celery waits forever on timeout=0: keep at least one short poll once the deadline passed
    remaining = None if deadline is None else max(deadline - time.monotonic(), 0.01)
    try:
        value = async_result.get(timeout=remaining, propagate=False)
    except CeleryTimeout:
        raise TimeoutError(
            f"task {async_result.id} is not done after {timeout:g} s (status {async_result.state})"
        ) from None
    if async_result.state != "SUCCESS":
        raise TaskFailed(async_result.id, async_result.state, value)
    return value
