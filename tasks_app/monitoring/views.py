"""``/healthz`` and ``/metrics``: what load balancers and Prometheus read."""

import hmac
import ipaddress

from django.db import DatabaseError
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from tasks_app import conf
from tasks_app.monitoring import health, prometheus

# A loopback peer that says it forwards for someone is a proxy on this host: not a local client.
# (nginx's plain proxy_pass adds none of these: behind a proxy, TASKHUB_BEHIND_PROXY says so instead.)
FORWARDING_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP", "X-Forwarded-Proto", "X-Forwarded-Host")


@csrf_exempt  # GET and HEAD only: a POST is a 405, not the CSRF failure page
@never_cache
@require_safe
def healthz(request):
    """Every dependency's health as JSON: 200 when the required ones are healthy, else 503."""
    result = health.report()
    return JsonResponse(result, status=200 if result["healthy"] else 503)


@csrf_exempt
@never_cache
@require_safe
def metrics(request):
    """taskhub's metrics for Prometheus, computed from the database now.

    With ``TASKHUB_METRICS_TOKEN`` set, only a request bearing it is answered; without, only
    one from a loopback address (the socket's peer: a proxy's X-Forwarded-For is never trusted,
    and a loopback request that carries one came through a proxy, so it is refused). Behind a
    reverse proxy (``TASKHUB_BEHIND_PROXY``) every request comes from it, so loopback proves nothing.
    """
    refusal = _refusal(request)
    if refusal:
        return refusal
    try:
        body, content_type = prometheus.exposition(request.headers.get("Accept", ""))
    except DatabaseError as exc:
        return _line(503, f"the database did not answer: {' '.join(str(exc).split())[:200]}")
    return HttpResponse(body, content_type=content_type)


def _refusal(request) -> HttpResponse | None:
    token = conf.get("METRICS_TOKEN")
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(_sent_bytes(given.strip()), token.encode()):
            return None
        response = _line(401, "/metrics needs the bearer token of TASKHUB_METRICS_TOKEN")
        response["WWW-Authenticate"] = 'Bearer realm="taskhub metrics"'
        return response
    if conf.get("BEHIND_PROXY"):
        return _line(403, "/metrics behind a reverse proxy (TASKHUB_BEHIND_PROXY) needs TASKHUB_METRICS_TOKEN set")
    if _loopback(request.META.get("REMOTE_ADDR", "")) and not any(h in request.headers for h in FORWARDING_HEADERS):
        return None
    return _line(403, "/metrics answers loopback clients only; set TASKHUB_METRICS_TOKEN to scrape it from elsewhere")


def _sent_bytes(header_value: str) -> bytes:
    """The header's bytes as sent: WSGI hands them over decoded as latin-1 (a UTF-8 token arrives as mojibake)."""
    try:
        return header_value.encode("latin-1")
    except UnicodeEncodeError:  # not from a WSGI server (a test client, say): the text itself
        return header_value.encode()


def _loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:127.0.0.1 from a dual-stack socket
    return (mapped or ip).is_loopback


def _line(status: int, text: str) -> HttpResponse:
    return HttpResponse(text + "\n", status=status, content_type="text/plain; charset=utf-8")
