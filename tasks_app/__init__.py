"""taskhub: scheduled and one-off background jobs for Django, on Celery or APScheduler.

A handler author needs only this module::

    from tasks_app import RunContext, handler

    @handler(timeout=30, retries=2)
    async def refresh_prices(region: str, context: RunContext) -> int:
        context.report_progress(0.5, "half way")
        return 42

The layers, each a package that imports only those below it: ``handlers`` (registry, specs,
kwargs schema, context; no Django ORM) ← ``scheduling`` (the slot function, misfire, words)
← ``models`` ← ``runner`` ← ``engines`` (``celery/``, ``apscheduler/``) ← ``admin``, ``api``,
``monitoring``, ``management``. ``conf`` and ``exceptions`` serve every layer.
"""

from tasks_app import exceptions
from tasks_app.exceptions import *  # noqa: F403  (every taskhub exception is public, as exceptions.__all__ lists)
from tasks_app.handlers.context import RunContext
from tasks_app.handlers.registry import registry
from tasks_app.handlers.specs import BaseHandler

handler = registry.handler

__all__ = ["BaseHandler", "RunContext", "handler", "registry", *exceptions.__all__]
