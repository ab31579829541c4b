"""The soak's figures: what was owed, what happened, and what went wrong.

- **slots due**: ``Jobs.due`` over the measured window (slots near an edit left out).
- **effects**: lines in the effects file (``bench/soak_handlers.py``) for slots in the window;
  **duplicate effects**: a ``(job, slot)`` with more than one line, counted beyond the first.
- **lost**: a due slot with neither an effect nor any run row (a ``skipped`` run is a record);
  split into those within a restart of Postgres or Redis (from ``BEFORE_RESTART`` before the
  stop to ``AFTER_RESTART`` after it is back) and those elsewhere.
- **stuck**: runs of slots in the window still ``queued`` or ``running`` after the drain.
- **self-deaths**: processes that exited without the soak killing them (counted by ``soak.py``).
"""

import collections
import datetime as dt
import json
from pathlib import Path

BEFORE_RESTART = dt.timedelta(seconds=2)  # a slot fired as the server stops is caught in the restart
AFTER_RESTART = dt.timedelta(seconds=30)


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

    return list(JobRun.objects.filter(scheduled_for__gte=start, scheduled_for__lte=end)
                .values("job__name", "scheduled_for", "status", "engine", "trigger", "attempt", "reason",
                        "duplicate_claims"))


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
