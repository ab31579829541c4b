"""Scheduling: when a job fires, as pure functions both engines share.

``slots`` is the one slot function (cron in the job's zone with classic DST rules, epoch-
anchored intervals, once), ``misfire`` decides what happens to slots whose time has passed,
and ``describe`` says a schedule in words.

What it is not: no ORM and no clock of its own — a job is read through its attributes and
``now`` is always passed in; recording skipped slots is the runner's (``runner/skipped.py``).
"""
