"""A job's schedule in words, for the admin: they say what the slot function fires."""

from cron_descriptor import ExpressionDescriptor, Options
from croniter import croniter


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
    for spelled in (expression, _expanded(expression)):
        try:
            return _describe(spelled, _day_fields(expression), options)
        except Exception:  # cron-descriptor raises its own types, also for some valid steps (DOW */7)
            continue
    return expression


def _describe(expression: str, combined: str, options: Options) -> str:
    words = ExpressionDescriptor(expression, options)
    if combined == "AND":
        return words.get_description()
    description = _days_in_words(words, combined)
    return ExpressionDescriptor.transform_case(words.transform_verbosity(description, False), options.casing_type)


def _expanded(expression: str) -> str:
    """The expression with its fields spelled out as croniter reads them (``*/7`` -> ``0``)."""
    try:
        fields, nth_weekday = croniter.expand(expression)
    except Exception:
        return expression
    return expression if nth_weekday else " ".join(",".join(str(v).upper() for v in field) for field in fields)


def _day_fields(expression: str) -> str:
    """How the slot function (croniter) combines the two day fields: "AND", "OR" or "WEEKDAY".

    Classic cron fires on either day field when both are restricted; croniter decides that
    on the expanded fields, so ``*/2`` counts as restricted. With an nth weekday (``1#2``,
    ``L5``) croniter's fires are that weekday's dates alone.
    """
    try:
        fields, nth_weekday = croniter.expand(expression)
    except Exception:  # croniter refuses it: validation says why; cron-descriptor may still word it
        return "AND"
    if len(fields) != 5 or fields[2][0] == "*" or fields[4][0] == "*":
        return "AND"
    return "WEEKDAY" if nth_weekday else "OR"


def _days_in_words(words: ExpressionDescriptor, combined: str) -> str:
    weekdays = words.get_day_of_week_description()
    month = words.get_month_description().replace(", only in ", ", in ", 1)
    if combined == "WEEKDAY":
        return f"{words.get_time_of_day_description()}{weekdays}{month}{words.get_year_description()}"
    weekdays = weekdays.removeprefix(", ").removeprefix("only ").removeprefix("on ")
    either = f", or on {weekdays}" if weekdays[:1].isupper() else f", or {weekdays}"
    return (
        f"{words.get_time_of_day_description()}{words.get_day_of_month_description()}{either}{month}"
        f"{words.get_year_description()}"
    )


def describe_seconds(seconds: int | None) -> str:
    if not seconds:
        return ""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}" if n != 1 else unit
    return f"{seconds} seconds" if seconds != 1 else "second"
