"""Monitoring: what an operator reads — health checks, ``/healthz`` and the dashboard.

``health`` runs each check in a thread with a deadline (database, broker, workers),
``schedulers`` adds the scheduler and broken-job checks, ``dashboard`` gathers the admin
index's figures in a few queries, ``charts`` draws them as inline SVG, and ``views``
serves ``/healthz``.

What it is not: it changes nothing; every function here reads.
"""
