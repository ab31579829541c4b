"""Kept for migration 0003, which names ``tasks_app.api.models.new_key_id`` as a default.

The API client models live in ``tasks_app/models/api_clients.py``; migrations stay as they are.
"""

from tasks_app.models.api_clients import new_key_id

__all__ = ["new_key_id"]
