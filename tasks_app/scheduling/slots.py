"""The one slot function: when a job fires, for both engines.

Celery beat and APScheduler both ask this module for a job's fire instants, so two
schedulers (of either engine) always agree on the slot, ``scheduled_for``, they are
firing. Pure Python on purpose: no Django, no engine, no clock except where a caller
passes one in. All instants are returned as UTC-aware datetimes.

- cron: five fields (minute hour day month weekday) in croniter syntax, evaluated on the
  wall clock of the job's time zone with classic (Vixie) cron's daylight-saving rules.
  A "fixed-hour" job (no ``*`` or ``/`` in the hour field) fires once, at the end of a
  spring-forward gap, for the times the gap swallows, and only at the first of two
  repeated fall-back times. Any other job follows real time: it skips times that do not
  exist and fires at both instants of a repeated time.
- interval: ticks at ``k * seconds`` after the Unix epoch (UTC), for whole ``k``.
- once: ``run_at`` itself.

Total on purpose: for any input these functions return, raise ``ScheduleError`` (one line
for a person), or run out of instants — never another exception, never an unbounded walk.
A search stops after ``HORIZON_YEARS`` without a fire, and at the end of ``datetime``'s
range (year 9999): a schedule past either has no more fire times. Validation asks these
same functions (``validate_cron(expression, zone)``), so what it accepts fires.

Not here: misfire policy, claiming slots, or storing anything.
"""

import functools
import heapq
import itertools
import zoneinfo
from datetime import UTC, datetime, timedelta, tzinfo

from croniter import CroniterBadDateError, CroniterError, croniter

from tasks_app.exceptions import ScheduleError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
ALLOWED = ("0-59", "0-23", "1-31", "1-12 or JAN-DEC", "0-7 or SUN-SAT")
ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
# Names ZoneInfo may load from the filesystem that are not a place's time zone.
NOT_ZONES = {"localtime", "posixrules", "Factory"}
HORIZON_YEARS = 10
HORIZON = timedelta(days=366 * HORIZON_YEARS)
# A valid cron job fires at least this many times, each within HORIZON of the one before.
FIRES_CHECKED = 3
# datetime arithmetic past year 9999 raises these; a schedule there has no more fire times.
PAST_THE_END = (OverflowError, ValueError)


# (expression, zone) -> when it was last found valid: 100,000 jobs on a few schedules validate in a
# few slot walks (a valid expression stays valid for a while; an invalid one is walked every time).
_found_valid: dict[tuple[str, str], datetime] = {}
VALID_FOR = timedelta(hours=1)


def validate_cron(expression: str, tz: "str | tzinfo" = "UTC") -> None:
    """Raise ScheduleError unless ``expression`` is 5 valid fields that keep firing in ``tz``.

    It asks the engines' own function: the next ``FIRES_CHECKED`` fire times from now, each
    within ``HORIZON_YEARS`` of the one before (a time that only ever falls into a
    daylight-saving gap never fires, whatever its wall-clock matches say).
    """
    now, key = datetime.now(UTC), (expression, str(tz))
    if timedelta(0) <= now - _found_valid.get(key, datetime.min.replace(tzinfo=UTC)) < VALID_FOR:
        return
    _fixed_hour(expression)
    fires = cron_fire_times(expression, tz, now, FIRES_CHECKED)
    if len(fires) < FIRES_CHECKED:
        where = "" if str(tz) == "UTC" else f" in {tz}"
        if not fires:
            raise ScheduleError(
                f"cron expression '{expression.strip()}' never fires{where} within {HORIZON_YEARS} years"
            )
        raise ScheduleError(
            f"cron expression '{expression.strip()}' fires{where} less than once in {HORIZON_YEARS} years"
        )
    if len(_found_valid) >= 10_000:
        _found_valid.clear()
    _found_valid[key] = now


def _check_syntax(expression: str) -> None:
    fields = _split(expression)
    for index, field in enumerate(fields):
        _check_field(index, field)
    try:
        croniter(" ".join(fields))
    except (CroniterError, ValueError, TypeError, KeyError) as exc:
        raise ScheduleError(f"cron expression '{expression.strip()}' is invalid: {exc}") from None


def _split(expression: str) -> list[str]:
    if not isinstance(expression, str) or not expression.strip():
        raise ScheduleError("cron expression is empty; expected 5 fields (minute hour day month weekday)")
    word = expression.strip().lower()
    if word.startswith("@"):
        hint = f", e.g. '{ALIASES[word]}'" if word in ALIASES else ""
        raise ScheduleError(f"cron alias '{expression.strip()}' is not supported; write the 5 fields{hint}")
    fields = expression.split()
    if len(fields) != 5:
        raise ScheduleError(f"cron expression must have 5 fields (minute hour day month weekday), got {len(fields)}")
    return fields


def _check_field(index: int, field: str) -> None:
    if not _field_ok(index, field):
        raise ScheduleError(f"cron {FIELDS[index]} field '{field}' is invalid (allowed: {ALLOWED[index]})")


def _field_ok(index: int, field: str) -> bool:
    if any(item.lower().startswith("r") for item in field.split(",")):
        return False  # R (random) would give every scheduler process its own schedule
    probe = ["*"] * 5
    probe[index] = field
    try:
        croniter.expand(" ".join(probe))
    except (CroniterError, ValueError, TypeError, KeyError):
        return False
    return True


def validate_timezone(name: str) -> zoneinfo.ZoneInfo:
    """The ZoneInfo for an IANA time zone name; ScheduleError for anything else."""
    if not isinstance(name, str) or not name.strip():
        raise ScheduleError("time zone is empty; use an IANA name such as 'Europe/Amsterdam'")
    if name not in known_zones():
        raise ScheduleError(f"unknown time zone '{name}'")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # listed, yet its file is gone or bad
        raise ScheduleError(f"unknown time zone '{name}'") from None


@functools.cache
def known_zones() -> frozenset[str]:
    """The IANA names this machine's tzdata knows (read once per process)."""
    return frozenset(zoneinfo.available_timezones()) - NOT_ZONES


def cron_fire_times(expression: str, tz: str | tzinfo, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` cron fire instants strictly after ``after``, in UTC."""
    zone = _zone(tz)
    fixed = _fixed_hour(expression)
    _aware("after", after)
    return list(itertools.islice(_cron_instants(expression, fixed, zone, after), max(count, 0)))


def interval_fire_times(seconds: int, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` epoch-anchored interval ticks strictly after ``after``, in UTC."""
    return list(itertools.islice(_interval_ticks(_step(seconds), _aware("after", after)), max(count, 0)))


def once_fire_times(run_at: datetime, after: datetime, count: int) -> list[datetime]:
    """``[run_at]`` (in UTC) if it is strictly after ``after``, else ``[]``."""
    run_at = _aware("run_at", run_at).astimezone(UTC)
    return [run_at] if count > 0 and run_at > _aware("after", after) else []


def fire_times(
    schedule_type: str,
    *,
    cron_expression: str = "",
    timezone: str = "UTC",
    interval_seconds: int | None = None,
    run_at: datetime | None = None,
    after: datetime,
    count: int,
) -> list[datetime]:
    """The next ``count`` fire instants of a schedule strictly after ``after``, in UTC."""
    if schedule_type == "cron":
        return cron_fire_times(cron_expression, timezone, after, count)
    if schedule_type == "interval":
        return interval_fire_times(interval_seconds, after, count)
    if schedule_type == "once":
        return once_fire_times(run_at, after, count)
    raise ScheduleError(f"unknown schedule type '{schedule_type}'; expected cron, interval or once")


def iter_fire_times(
    schedule_type: str,
    *,
    cron_expression: str = "",
    timezone: str = "UTC",
    interval_seconds: int | None = None,
    run_at: datetime | None = None,
    after: datetime,
):
    """The fire instants strictly after ``after``, lazily and in order (stop when you have enough)."""
    if schedule_type == "cron":
        fixed = _fixed_hour(cron_expression)
        return _cron_instants(cron_expression, fixed, _zone(timezone), _aware("after", after))
    if schedule_type == "interval":
        return _interval_ticks(_step(interval_seconds), _aware("after", after))
    return iter(fire_times(schedule_type, run_at=run_at, after=after, count=1))


def slot_at(
    schedule_type: str,
    *,
    cron_expression: str = "",
    timezone: str = "UTC",
    interval_seconds: int | None = None,
    run_at: datetime | None = None,
    at: datetime,
) -> datetime | None:
    """The latest fire instant at or before ``at`` (the slot being fired), in UTC, or None."""
    _aware("at", at)
    if schedule_type == "cron":
        return _cron_slot(cron_expression, _zone(timezone), at)
    if schedule_type == "interval":
        step = _step(interval_seconds)
        return EPOCH + (at - EPOCH) // step * step  # never after ``at``, so always in range
    if schedule_type == "once":
        run_at = _aware("run_at", run_at).astimezone(UTC)
        return run_at if run_at <= at else None
    raise ScheduleError(f"unknown schedule type '{schedule_type}'; expected cron, interval or once")


def _interval_ticks(step: timedelta, after: datetime):
    first = (after - EPOCH) // step + 1
    try:
        for k in itertools.count():
            yield EPOCH + (first + k) * step
    except PAST_THE_END:
        return


def _aware(name: str, moment: datetime | None) -> datetime:
    if not isinstance(moment, datetime):
        raise ScheduleError(f"{name} must be a datetime, got {moment!r}")
    if moment.utcoffset() is None:
        raise ScheduleError(f"{name} must be timezone-aware, got naive {moment.isoformat()}")
    return moment


def _step(seconds: int | None) -> timedelta:
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 1:
        raise ScheduleError(f"interval must be a whole number of seconds >= 1, got {seconds!r}")
    return timedelta(seconds=seconds)


def _zone(tz: str | tzinfo) -> tzinfo:
    return validate_timezone(tz) if isinstance(tz, str) or tz is None else tz


@functools.lru_cache(maxsize=512)
def _fixed_hour(expression: str) -> bool:
    """Check the syntax once per expression; True when the hour field has no ``*`` or ``/``."""
    _check_syntax(expression)
    hour = expression.split()[1]
    return "*" not in hour and "/" not in hour


def _cron_instants(expression: str, fixed: bool, zone: tzinfo, after: datetime):
    """Yield the fire instants strictly after ``after`` in increasing order.

    Walls are visited in order; only the second instants of repeated (fall-back) times
    come out of order, so they wait in a small heap until no later wall can undercut them.
    The walk ends ``HORIZON`` after the last instant found (or ``after``) without another,
    and at the end of ``datetime``'s range.
    """
    pending: list[datetime] = []
    try:
        last = after.astimezone(UTC).replace(tzinfo=None)
        for wall in _walls(expression, _first_wall(zone, after)):
            if wall - last > HORIZON:
                break
            instants = _instants(wall, zone, fixed)
            while pending and instants and pending[0] < instants[0]:
                yield heapq.heappop(pending)
            for instant in instants:
                if instant > after and instant not in pending:
                    heapq.heappush(pending, instant)
                    last = max(last, instant.replace(tzinfo=None))
    except PAST_THE_END:
        pass
    yield from sorted(pending)


def _first_wall(zone: tzinfo, after: datetime) -> datetime:
    # Start earlier by the size of a coming fall-back: its repeated hour can hold instants after `after`.
    local = after.astimezone(zone)
    try:
        fallback = max(local.utcoffset() - (after + timedelta(days=1)).astimezone(zone).utcoffset(), timedelta(0))
    except PAST_THE_END:
        fallback = timedelta(0)
    return local.replace(tzinfo=None) - fallback - timedelta(minutes=1)


def _walls(expression: str, start: datetime, backwards: bool = False):
    """Naive wall-clock times matching ``expression``, after (or before) ``start``.

    Ends where croniter finds no match within the horizon or runs out of years.
    """
    walls = croniter(expression, start, max_years_between_matches=HORIZON_YEARS + 1)
    try:
        while True:
            yield walls.get_prev(datetime) if backwards else walls.get_next(datetime)
    except (CroniterBadDateError, *PAST_THE_END):
        return


def _instants(wall: datetime, zone: tzinfo, fixed: bool) -> tuple[datetime, ...]:
    """The real instants a wall-clock time fires at, by Vixie cron's DST rules."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) != wall:  # in a spring-forward gap
        return (_gap_end(second, first, zone),) if fixed else ()
    return (first,) if fixed or first == second else (first, second)


def _gap_end(before: datetime, after: datetime, zone: tzinfo) -> datetime:
    """The first instant with ``after``'s UTC offset: where the gap ends (bisected to the second)."""
    offset = after.astimezone(zone).utcoffset()
    while after - before > timedelta(seconds=1):
        middle = before + timedelta(seconds=(after - before) // timedelta(seconds=2))
        before, after = (before, middle) if middle.astimezone(zone).utcoffset() == offset else (middle, after)
    return after


def _cron_slot(expression: str, zone: tzinfo, at: datetime) -> datetime | None:
    """Walk back to the last wall at or before ``at`` that fires, then forward over the fire times.

    That wall's first instant is never after ``at`` (first instants rise with the wall),
    so the slot is at or after it; the forward walk also sees repeated-hour instants.
    A slot more than ``HORIZON`` back is none.
    """
    fixed = _fixed_hour(expression)
    try:
        start = at.astimezone(zone).replace(tzinfo=None, microsecond=0) + timedelta(seconds=1)
        for wall in _walls(expression, start, backwards=True):
            if start - wall > HORIZON:
                return None
            instants = _instants(wall, zone, fixed)
            if instants:
                fires = _cron_instants(expression, fixed, zone, instants[0] - timedelta(seconds=1))
                return max(itertools.takewhile(lambda instant: instant <= at, fires), default=None)
    except PAST_THE_END:
        pass
    return None
