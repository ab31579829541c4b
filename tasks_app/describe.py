"""A job's schedule in words, for the admin."""

from cron_descriptor import ExpressionDescriptor, Options


def describe_schedule(job) -> str:
    if job.schedule_type == "cron":
        return f"{describe_cron(job.cron_expression)} ({job.timezone})"
    if job.schedule_type == "interval":
        return f"Every {describe_seconds(job.interval_seconds)}"
    if job.run_at:
        return f"Once, at {job.run_at:%Y-%m-%d %H:%M:%S %Z}"
    return ""


def describe_cron(expression: str) -> str:
    options = Options()
    options.use_24hour_time_format = True
    options.verbose = False
    try:
        return ExpressionDescriptor(expression, options).get_description()
    except Exception:  # cron-descriptor raises its own types for what croniter already rejected
        return expression


def describe_seconds(seconds: int | None) -> str:
    if not seconds:
        return ""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}" if n != 1 else unit
    return f"{seconds} seconds" if seconds != 1 else "second"
