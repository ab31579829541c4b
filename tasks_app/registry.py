"""Kept so handler modules written as ``from tasks_app.registry import handler`` keep working.

Write ``from tasks_app import handler`` in new code; the registry lives in
``tasks_app/handlers/registry.py``.
"""

from tasks_app.handlers.registry import Registry, handler, registry
from tasks_app.handlers.specs import BaseHandler, HandlerSpec, Param

__all__ = ["BaseHandler", "HandlerSpec", "Param", "Registry", "handler", "registry"]
