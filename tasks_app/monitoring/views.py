from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from tasks_app.monitoring import health


@never_cache
@require_safe
def healthz(request):
    """Every dependency's health as JSON: 200 when the required ones are healthy, else 503."""
    result = health.report()
    return JsonResponse(result, status=200 if result["healthy"] else 503)
