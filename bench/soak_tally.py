"""The soak's figures: what was owed, what happened, and what went wrong.

- **slots due**: ``Jobs.due`` over the measured window (slots near an edit left out).
- **effects**: lines in the effects file (``bench/soak_handlers.py``) for slots in the window;
  **duplicate effects**: a ``(job, slot)`` with more than one line, counted beyond the first.
- **lost**: a due slot with neither an effect nor any run row (a ``skipped`` run is a record);
  split into those within a restart of Postgres or Redis (from ``BEFORE_RESTART`` before the
  stop to ``AFTER_RESTART`` after it is back) and those elsewhere.
- **stuck**: runs of slots in the window still ``queued`` or ``running`` after the drain.
- **self-deaths**: processes that exited without the soak killing them (counted by ``soak_fleet.py``).

``report`` prints them as one table; ``details`` is what ``details.json`` holds.
"""

import collections
import datetime as dt
import json
from pathlib import Path

from bench import common

BEFORE_RESTART = dt.timedelta(seconds=2)  # a slot fired as the server stops is caught in the restart
AFTER_RESTART = dt.timedelta(seconds=30)
NEAR = dt.timedelta(seconds=15)  # details.json lists the soak's faults this close to each lost slot


def read_effects(path: Path) -> list[dict]:
    if not path.exists():
        return []
    effects = []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        record["slot"] = dt.datetime.fromisoformat(record["slot"])
        effects.append(record)
    return effects


def run_rows(start: dt.datetime, end: dt.datetime) -> list[dict]:
    from tasks_app.models import JobRun

    return list(
        JobRun.objects.filter(scheduled_for__gte=start, scheduled_for__lte=end).values(
            "job__name", "scheduled_for", "status", "engine", "trigger", "attempt", "reason", "duplicate_claims"
        )
    )


def tally(due: set, effects: list[dict], runs: list[dict], start, end, restarts: list[tuple]) -> dict:
    window = [e for e in effects if start <= e["slot"] <= end]
    per_slot = collections.Counter((e["job"], e["slot"]) for e in window)
    recorded = {(r["job__name"], r["scheduled_for"]) for r in runs}
    lost = sorted(slot for slot in due if slot not in per_slot and slot not in recorded)
    during = [s for s in lost if any(a - BEFORE_RESTART <= s[1] <= b + AFTER_RESTART for a, b in restarts)]
    statuses = collections.Counter(r["status"] for r in runs)
    stuck = [r for r in runs if r["status"] in ("queued", "running")]
    return {
        "slots_due": len(due),
        "effects": len(window),
        "duplicate_effects": sum(n - 1 for n in per_slot.values() if n > 1),
        "duplicates": sorted(k for k, n in per_slot.items() if n > 1),
        "lost": lost,
        "lost_during_restarts": len(during),
        "lost_elsewhere": [s for s in lost if s not in during],
        "stuck": stuck,
        "statuses": dict(sorted(statuses.items())),
        "duplicate_claims": sum(r["duplicate_claims"] for r in runs),
    }


def percent(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


def wanted(figures: dict, self_deaths: int) -> list[str]:
    """The wanted figures that were missed (none: all met)."""
    missed = []
    if figures["duplicate_effects"]:
        missed.append("duplicate effects")
    if figures["stuck"]:
        missed.append("stuck runs")
    if self_deaths:
        missed.append("self-deaths")
    if percent(len(figures["lost"]), figures["slots_due"]) > 5:
        missed.append("lost > 5 %")
    if figures["lost_elsewhere"]:
        missed.append("lost outside restarts")
    return missed


def report(minutes: float, jobs: int, f: dict, deaths: list[dict], kills: dict) -> str:
    lost = len(f["lost"])
    rows = [
        ["slots_due", f["slots_due"], "-"],
        ["effects", f["effects"], "-"],
        ["duplicate_effects", f["duplicate_effects"], "0"],
        ["lost_slots", lost, "<=5%"],
        ["lost_pct", percent(lost, f["slots_due"]), "<=5"],
        ["lost_in_restarts", f["lost_during_restarts"], "-"],
        ["lost_elsewhere", len(f["lost_elsewhere"]), "0"],
        ["stuck_runs", len(f["stuck"]), "0"],
        ["self_deaths", len(deaths), "0"],
    ]
    notes = [
        f"runs by status: {f['statuses']}; duplicate claims refused: {f['duplicate_claims']}",
        f"kills by the soak: {kills}",
        common.machine_note(),
    ]
    notes += [
        f"self-death: {d['process']} exit {d['exit']} after {d['after_seconds']} s: {d['last_error']}" for d in deaths
    ]
    notes += [
        f"stuck: {r['job__name']} {r['scheduled_for']:%H:%M:%S} {r['status']} attempt {r['attempt']} on {r['engine']}"
        for r in f["stuck"][:20]
    ]
    notes += [f"duplicate effect: {job} {slot:%H:%M:%S}" for job, slot in f["duplicates"][:20]]
    notes += [f"lost outside restarts: {job} {slot:%H:%M:%S}" for job, slot in f["lost_elsewhere"][:20]]
    title = f"soak: {minutes:g} min, {jobs} jobs, 2 workers, 2 beats, 2 runapscheduler"
    return common.table(title, ["figure", "value", "wanted"], rows, notes)


def details(figures: dict, engine_at, events: list, restarts: list, self_deaths: list) -> dict:
    """Every lost slot (its engine and the soak's faults near it), stuck run, restart and self-death."""
    lost = [
        {
            "job": job,
            "slot": slot.isoformat(),
            "engine": engine_at(job, slot),
            "faults_near": [
                f"{(at - slot).total_seconds():+.1f} s: {text}" for at, text in events if abs(at - slot) <= NEAR
            ],
        }
        for job, slot in figures["lost"]
    ]
    return {"lost": lost, "stuck": figures["stuck"], "restarts": restarts, "self_deaths": self_deaths}
