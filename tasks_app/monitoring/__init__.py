"""Monitoring: what an operator reads — health checks, ``/healthz`` and the dashboard.

``health`` runs each check in a thread with a deadline (database, broker, workers),
``schedulers`` adds the scheduler and broken-job checks, ``dashboard`` gathers the admin
index's figures in a few queries, ``charts`` draws them as inline SVG, ``metrics`` reads the
figures of ``/metrics`` and ``prometheus`` renders them, and ``views`` serves ``/healthz``
and ``/metrics``.

What it is not: it changes nothing, but for the one bookkeeping write of a scrape (folding
finished runs into the run tally, ``models/run_counts.py``); every other function here reads.
"""
