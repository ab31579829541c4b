"""The figures of ``metrics.py`` as Prometheus metric families, rendered by prometheus-client.

A custom collector on a registry made for each request (never the process-wide default
registry, which would mix in this process's own Python metrics and keep state between
scrapes): every scrape reads the database afresh. ``exposition()`` answers in the format the
scraper's ``Accept`` header asks for (the Prometheus text format unless it asks for OpenMetrics).

The histograms are gauge histograms: counts over the last hour, which fall as runs leave the
window. Read them with ``histogram_quantile`` on the ``_bucket`` series directly, not ``rate()``.
"""

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeHistogramMetricFamily, GaugeMetricFamily
from prometheus_client.utils import floatToGoString

from tasks_app.monitoring import metrics

WINDOW_WORDS = "in the last hour"


class TaskhubCollector:
    """Yields taskhub's metric families from one ``metrics.read()`` per collection."""

    def describe(self):
        return []  # nothing to read when registered: the queries run once, at collection

    def collect(self):
        figures = metrics.read()
        yield from _runs(figures)
        yield from _histograms(figures)
        yield from _live(figures)
        yield from _jobs(figures)


def _runs(figures):
    runs = CounterMetricFamily(
        "taskhub_runs",
        "Runs that ended, by job, engine and final status (a retried slot counts once, when it ends).",
        labels=["job", "engine", "status"],
    )
    for (job, engine, status), n in sorted(figures.runs.items()):
        runs.add_metric([job, engine, status], n)
    duplicates = CounterMetricFamily(
        "taskhub_duplicate_claims",
        "Claims of a slot that already had a run, so the handler was not called again.",
        labels=["job", "engine"],
    )
    for job, engine in sorted({(job, engine) for job, engine, _ in figures.runs} | set(figures.duplicate_claims)):
        duplicates.add_metric([job, engine], figures.duplicate_claims[(job, engine)])
    return [runs, duplicates]


def _histograms(figures):
    families = []
    for name, text, bounds, values in [
        (
            "taskhub_run_duration_seconds",
            f"Durations of the runs that finished {WINDOW_WORDS}, by engine.",
            metrics.DURATION_BUCKETS,
            figures.durations,
        ),
        (
            "taskhub_run_lateness_seconds",
            f"Start minus slot of the first attempts that finished {WINDOW_WORDS}, by engine.",
            metrics.LATENESS_BUCKETS,
            figures.lateness,
        ),
    ]:
        family = GaugeHistogramMetricFamily(name, text, labels=["engine"])
        for engine, histogram in sorted(values.items()):
            edges = [floatToGoString(b) for b in bounds] + ["+Inf"]
            family.add_metric([engine], list(zip(edges, histogram.counts)), histogram.total)
        families.append(family)
    return families


def _live(figures):
    families = []
    for name, text, values in [
        ("taskhub_queued_runs", "Runs waiting to start now, by engine (due or waiting for a retry).", figures.queued),
        ("taskhub_running_runs", "Runs running now, by engine.", figures.running),
        (
            "taskhub_oldest_queued_run_age_seconds",
            "Seconds the longest-waiting due queued run has waited since it was due, by engine (0: none).",
            figures.oldest_queued_age,
        ),
        (
            "taskhub_engine_heartbeat_age_seconds",
            "Seconds since the leading scheduler of the engine (beat, runapscheduler) last wrote its heartbeat; "
            "absent for an engine whose scheduler never ran.",
            figures.heartbeat_age,
        ),
    ]:
        family = GaugeMetricFamily(name, text, labels=["engine"])
        for engine, value in sorted(values.items()):
            family.add_metric([engine], value)
        families.append(family)
    return families


def _jobs(figures):
    jobs = GaugeMetricFamily(
        "taskhub_jobs",
        "Jobs by engine and state: enabled, paused, or broken (enabled but its schedule cannot be read).",
        labels=["engine", "state"],
    )
    for (engine, state), n in sorted(figures.jobs.items()):
        jobs.add_metric([engine, state], n)
    overdue = GaugeMetricFamily(
        "taskhub_job_overdue",
        "1 for each enabled job whose slot passed more than its misfire grace ago with no run at all, as the "
        "engines' last look found it; jobs that are not overdue have no series.",
        labels=["job"],
    )
    for job in sorted(figures.overdue):
        overdue.add_metric([job], 1)
    count = GaugeMetricFamily(
        "taskhub_overdue_jobs",
        "Enabled jobs overdue, by engine, as the engines' last look found them.",
        labels=["engine"],
    )
    for engine, n in sorted(figures.overdue_count.items()):
        count.add_metric([engine], n)
    families = [jobs, overdue, count]
    if figures.overdue_look_age is not None:
        families.append(
            GaugeMetricFamily(
                "taskhub_overdue_look_age_seconds",
                "Seconds since an engine process (beat, runapscheduler) last looked for overdue jobs; absent until "
                "one has: the two families above are only as fresh as that look.",
                value=figures.overdue_look_age,
            )
        )
    return families


def exposition(accept: str = "") -> tuple[bytes, str]:
    """The scrape's body and content type, read from the database now."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TaskhubCollector())
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type
