"""The trigger API's views: ``POST /api/jobs/<name>/trigger`` and ``GET /api/runs/<id>``.

Every request is signed (``signing``) by an enabled ``ApiClient``; every answer is one line of
JSON, errors as ``{"error": "..."}``. Jobs and runs are looked up inside the client's scope
(``ApiClient.jobs()``), so one it may not use answers 404 exactly as one that does not exist. A
run is requested through the runner only, and nothing is queued when any check fails. CSRF does
not apply: no cookie authenticates these requests.
"""

import json
import logging
from functools import wraps

from django.core.exceptions import NON_FIELD_ERRORS, RequestDataTooBig
from django.http import JsonResponse
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from tasks_app import conf, signing
from tasks_app.engines import request_run
from tasks_app.engines.base import EngineUnavailable
from tasks_app.handlers.registry import KwargsError, UnknownHandler
from tasks_app.models import Job, JobRun, Trigger
from tasks_app.models.api_clients import ApiClient, ApiNonce, SecretUnreadable
from tasks_app.runner import run_requests

log = logging.getLogger("tasks_app.api")


class ApiError(Exception):
    def __init__(self, status: int, message: str, **extra):
        super().__init__(message)
        self.status, self.extra = status, extra

    def response(self) -> JsonResponse:
        response = JsonResponse({"error": str(self), **self.extra}, status=self.status)
        if self.status == 401:
            response["WWW-Authenticate"] = "Taskhub-HMAC-SHA256"
        return response


def signed(method: str):
    """The view answers ``method`` only, to a signed request; it is called as ``view(request, client, ...)``."""

    def decorate(view):
        @csrf_exempt
        @never_cache
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            try:
                if request.method != method:
                    response = ApiError(405, f"method {request.method} not allowed: use {method}").response()
                    response["Allow"] = method
                    return response
                return view(request, authenticate(request), *args, **kwargs)
            except ApiError as exc:
                log.info(
                    "api request refused",
                    extra={
                        "status": exc.status,
                        "error": str(exc),
                        "path": request.path,
                        "key": request.headers.get(signing.KEY_HEADER, ""),
                    },
                )
                return exc.response()

        return wrapper

    return decorate


def authenticate(request) -> ApiClient:
    headers = {name: request.headers.get(name, "") for name in signing.HEADERS}
    try:
        signing.check_form(headers)
        signing.check_fresh(headers[signing.TIMESTAMP_HEADER])
        client = ApiClient.objects.filter(key_id=headers[signing.KEY_HEADER]).first()
        if client is None:
            raise signing.SignatureError("unknown API key")
        target = signing.request_target(request.META, request.path)
        signing.check_signature(client.secret, headers, request.method, target, _body(request))
    except signing.SignatureError as exc:
        raise ApiError(401, str(exc)) from None
    except SecretUnreadable as exc:
        log.error("api client secret unreadable", extra={"key": client.key_id, "error": str(exc)})
        raise ApiError(401, "this API key cannot be verified until its secret is rotated") from None
    if not client.enabled:
        raise ApiError(401, "this API key is disabled")
    if not ApiNonce.objects.use(client, headers[signing.NONCE_HEADER]):
        raise ApiError(401, "nonce already used: sign every request with a new one")
    client.mark_used()
    return client


def _body(request) -> bytes:
    try:
        return request.body
    except RequestDataTooBig:
        raise ApiError(413, "request body too large") from None


# -- views -----------------------------------------------------------------------------------
@signed("POST")
def trigger(request, client: ApiClient, name: str):
    job = _found(client.jobs().filter(name=name).first(), f"no job named '{name}'")
    try:  # paused or broken (409) before bad kwargs (400); request_run holds the same rule
        run_requests.check_runnable(job, paused_allowed=client.may_run_paused)
    except run_requests.RunRefused as exc:
        raise ApiError(409, str(exc)) from None
    kwargs = _check_kwargs(job, _requested_kwargs(request.body))
    try:
        run = request_run(
            job,
            Trigger.API,
            kwargs,
            paused_allowed=client.may_run_paused,
            requested_by=client.requester,
            api_client=client,
        )
        warning = None
    except run_requests.RunRefused as exc:
        raise ApiError(409, str(exc)) from None
    except EngineUnavailable as exc:  # the run stays queued; its engine starts it when it is back
        run, warning = exc.run, str(exc)
    answer = {
        "run": run.pk,
        "status": run.status,
        "job": job.name,
        "status_url": reverse("tasks_app_api:run", args=[run.pk]),
    }
    if warning:
        answer["warning"] = warning
    log.info("api run requested", extra={"job": job.name, "run": run.pk, "client": client.name})
    return JsonResponse(answer, status=202)


@signed("GET")
def run_status(request, client: ApiClient, run_id: int):
    run = _found(
        JobRun.objects.select_related("job").filter(pk=run_id, job__in=client.jobs()).first(), f"no run {run_id}"
    )
    return JsonResponse(
        {
            "run": run.pk,
            "job": run.job.name,
            "status": run.status,
            "trigger": run.trigger,
            "attempt": run.attempt,
            "scheduled_for": _time(run.scheduled_for),
            "started_at": _time(run.started_at),
            "finished_at": _time(run.finished_at),
            "duration_seconds": run.duration_seconds,
            "result": run.result,
            "error": (run.error.strip().splitlines() or [None])[-1],
            "progress": run.progress,
        }
    )


def _time(moment):
    return None if moment is None else moment.isoformat()  # to the microsecond: a slot's time is its identity


@csrf_exempt
def not_found(request, rest=""):
    return ApiError(404, f"no API endpoint at {request.path}").response()


# -- checks ----------------------------------------------------------------------------------
def _found(found, missing: str):
    """Lookups run inside the client's scope: what it may not use answers exactly as what does not exist."""
    if found is None:
        raise ApiError(404, missing)
    return found


def _requested_kwargs(body: bytes) -> dict | None:
    """The ``kwargs`` object of the body; None (the job's own) for an empty body or no ``kwargs``."""
    if not body.strip():
        return None
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, 'the body must be JSON: {"kwargs": {...}}') from None
    except RecursionError:  # the parser recurses: a deep body is refused before any depth check could see it
        raise ApiError(400, f"kwargs are nested too deeply (at most {conf.kwargs_limits()[0]} levels)") from None
    if not isinstance(payload, dict):
        raise ApiError(400, 'the body must be a JSON object: {"kwargs": {...}}')
    unknown = sorted(set(payload) - {"kwargs"})
    if unknown:
        raise ApiError(400, f'unknown field {", ".join(map(repr, unknown))}: the body takes only "kwargs"')
    kwargs = payload.get("kwargs")
    if "kwargs" in payload and not isinstance(kwargs, dict):
        raise ApiError(400, "kwargs must be a JSON object")
    return kwargs


def _check_kwargs(job: Job, kwargs: dict | None) -> dict | None:
    try:
        job.spec.validate_kwargs(job.kwargs if kwargs is None else kwargs)
    except UnknownHandler as exc:
        raise ApiError(409, f"job '{job.name}' cannot run: {exc}") from None
    except KwargsError as exc:
        # ``fields`` names parameters; what is wrong with the kwargs as a whole is in the message alone.
        fields = {name: problem for name, problem in exc.errors.items() if name != NON_FIELD_ERRORS}
        raise ApiError(400, str(exc), **({"fields": fields} if fields else {})) from None
    return kwargs
