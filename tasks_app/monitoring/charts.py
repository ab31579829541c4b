"""Inline SVG charts, drawn on the server: the 24-hour timeline of runs and a job's run history.

What it is: functions from already-aggregated data to safe HTML — an ``<svg role="img">`` with a
``<title>``, one ``<rect>`` per data point (each with a ``<title>`` naming its status in words),
a legend that names every colour and a ``<details>`` table with the same numbers.

What it is not: no queries (``dashboard.py`` makes them) and no JavaScript.
"""

import datetime as dt

from django.utils.html import format_html, format_html_join

from tasks_app.models import RunStatus

# The badges' palette, with the two failures and the two set-asides told apart.
COLOURS = {
    RunStatus.SUCCEEDED: "#1f7a3a",
    RunStatus.FAILED: "#b42318",
    RunStatus.TIMED_OUT: "#e0641a",
    RunStatus.RUNNING: "#1d5fb4",
    RunStatus.QUEUED: "#5f6670",
    RunStatus.CANCELLED: "#a3a8b0",
    RunStatus.SKIPPED: "#f2b441",
}
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 720, 180, 44, 22, 8
PLOT_W, PLOT_H = WIDTH - LEFT - 8, HEIGHT - BOTTOM - TOP


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"  # the admin's empty value
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def _n(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _svg(chart_id: str, title: str, body) -> str:
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" id="{}" class="taskhub-chart" role="img" aria-labelledby="{}-title" '
        'viewBox="0 0 {} {}" width="100%" preserveAspectRatio="xMinYMin meet"><title id="{}-title">{}</title>{}</svg>',
        chart_id,
        chart_id,
        WIDTH,
        HEIGHT,
        chart_id,
        title,
        body,
    )


def _axes(top_value: str, labels) -> str:
    """The baseline, the y scale's top value and x labels ``[(x, text)]``."""
    base = HEIGHT - BOTTOM
    lines = format_html(
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="currentColor" stroke-opacity="0.4"/>'
        '<text x="{}" y="{}" font-size="10" text-anchor="end" fill="currentColor">{}</text>'
        '<text x="{}" y="{}" font-size="10" text-anchor="end" fill="currentColor">0</text>',
        LEFT,
        base,
        WIDTH - 8,
        base,
        LEFT - 4,
        TOP + 8,
        top_value,
        LEFT - 4,
        base,
    )
    ticks = format_html_join(
        "",
        '<text x="{}" y="{}" font-size="10" text-anchor="middle" fill="currentColor">{}</text>',
        ((_n(x), HEIGHT - 6, text) for x, text in labels),
    )
    return lines + ticks


def legend(statuses) -> str:
    items = format_html_join(
        "",
        '<li><span class="taskhub-swatch" style="background:{}"></span>{}</li>',
        ((COLOURS[s], RunStatus(s).label) for s in statuses),
    )
    return format_html('<ul class="taskhub-legend">{}</ul>', items)


# -- the 24-hour timeline --------------------------------------------------------------------
def hours_of(since: dt.datetime, now: dt.datetime) -> list[dt.datetime]:
    """The UTC hours the window touches, oldest first."""
    hour = since.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    hours = []
    while hour <= now:
        hours.append(hour)
        hour += dt.timedelta(hours=1)
    return hours


def timeline(cells: list[dict], since: dt.datetime, now: dt.datetime) -> str:
    """Runs per hour stacked by status; ``cells`` are ``{"hour", "status", "count"}`` (non-empty only)."""
    hours = hours_of(since, now)
    grid = {(cell["hour"], cell["status"]): cell["count"] for cell in cells}
    totals = {hour: sum(grid.get((hour, s), 0) for s in RunStatus.values) for hour in hours}
    peak = max(totals.values(), default=0) or 1
    slot = PLOT_W / len(hours)
    rects = []
    for index, hour in enumerate(hours):
        y = HEIGHT - BOTTOM
        for status in RunStatus.values:
            count = grid.get((hour, status), 0)
            if not count:
                continue
            height = count / peak * PLOT_H
            y -= height
            rects.append(
                (
                    _n(LEFT + index * slot + 1),
                    _n(y),
                    _n(slot - 2),
                    _n(height),
                    COLOURS[status],
                    f"{hour:%H}:00",
                    status,
                    count,
                    f"{hour:%H}:00 UTC: {count} {RunStatus(status).label}",
                )
            )
    bars = format_html_join(
        "",
        '<rect x="{}" y="{}" width="{}" height="{}" fill="{}" data-hour="{}" '
        'data-status="{}" data-count="{}"><title>{}</title></rect>',
        rects,
    )
    labels = [(LEFT + (i + 0.5) * slot, f"{h:%H}") for i, h in enumerate(hours) if h.hour % 3 == 0]
    title = f"Runs per hour, {since:%Y-%m-%d %H:%M} to {now:%Y-%m-%d %H:%M} UTC, stacked by status"
    present = [s for s in RunStatus.values if any(status == s for _, status in grid)]
    return format_html(
        '<figure class="taskhub-figure">{}{}{}</figure>',
        _svg("taskhub-timeline", title, _axes(str(peak), labels) + bars),
        legend(present),
        _timeline_table(hours, grid, present),
    )


def _timeline_table(hours, grid, statuses) -> str:
    head = format_html_join("", '<th scope="col">{}</th>', ((RunStatus(s).label,) for s in statuses))
    rows = format_html_join(
        "",
        '<tr><th scope="row">{}</th>{}</tr>',
        (
            (
                f"{hour:%Y-%m-%d %H}:00 UTC",
                format_html_join("", "<td>{}</td>", ((grid.get((hour, s), 0),) for s in statuses)),
            )
            for hour in hours
            if any(grid.get((hour, s)) for s in statuses)
        ),
    )
    return format_html(
        '<details><summary>Runs per hour as a table</summary><table class="taskhub-table">'
        '<thead><tr><th scope="col">Hour</th>{}</tr></thead><tbody>{}</tbody></table></details>',
        head,
        rows,
    )


# -- a job's run history ---------------------------------------------------------------------
def run_history(runs: list, job_name: str) -> str:
    """One bar per run, oldest first: height for duration, colour (and title) for outcome."""
    slowest = max((run.duration_seconds or 0 for run in runs), default=0) or 1
    slot = PLOT_W / max(len(runs), 1)
    bars = []
    for index, run in enumerate(runs):
        height = max((run.duration_seconds or 0) / slowest * PLOT_H, 2)  # an unfinished run still shows
        label = f"#{run.pk} {RunStatus(run.status).label}, {duration(run.duration_seconds)}"
        bars.append(
            (
                _n(LEFT + index * slot + 1),
                _n(HEIGHT - BOTTOM - height),
                _n(max(slot - 2, 1)),
                _n(height),
                COLOURS[run.status],
                run.pk,
                run.status,
                run.duration_seconds or "",
                label,
            )
        )
    body = format_html_join(
        "",
        '<rect x="{}" y="{}" width="{}" height="{}" fill="{}" data-run="{}" data-status="{}" '
        'data-duration="{}"><title>{}</title></rect>',
        bars,
    )
    title = f"Duration of the last {len(runs)} runs of {job_name}, oldest first, coloured by outcome"
    svg = _svg("taskhub-history", title, _axes(duration(slowest), []) + body)
    rows = format_html_join(
        "",
        "<tr><td>#{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                run.pk,
                RunStatus(run.status).label,
                f"{run.scheduled_for:%Y-%m-%d %H:%M:%S} UTC",
                duration(run.duration_seconds),
            )
            for run in runs
        ),
    )
    table = format_html(
        '<details><summary>Runs as a table</summary><table class="taskhub-table"><thead><tr>'
        '<th scope="col">Run</th><th scope="col">Status</th><th scope="col">Scheduled for</th>'
        '<th scope="col">Duration</th></tr></thead><tbody>{}</tbody></table></details>',
        rows,
    )
    present = [s for s in RunStatus.values if any(run.status == s for run in runs)]
    return format_html('<figure class="taskhub-figure">{}{}{}</figure>', svg, legend(present), table)
