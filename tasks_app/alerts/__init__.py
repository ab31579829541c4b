"""Alerts: tell people when a job keeps failing or goes silent, once per streak, and when it recovers.

``streaks`` opens and closes a job's streaks and writes the outbox rows with them (the runner
calls ``after_outcome`` once a run's outcome is on record; the database keeps one open streak per
job and kind, so no process can start a storm), ``overdue`` does the same for jobs whose slot
passed with no run (``models/overdue.py`` decides which), ``channels`` says where messages go,
``messages`` what they say, ``outbox`` claims due rows (``SELECT … FOR UPDATE SKIP LOCKED``) and
hands them to ``delivery`` (e-mail, webhook) with retries and backoff, and ``courier`` is the
thread of an engine process that does the overdue look and the delivery, off its scheduling loop.

What it is not: it never runs a handler nor writes run history, and nothing here can fail or hold
up a run. It sits below the runner (which calls it) and above the models; the engines start the
courier.
"""
