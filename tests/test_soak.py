"""The chaos soak, 60 s of it: the wanted figures, and nothing it started left running.

``bench/soak.py`` starts its own Postgres cluster and Redis server (never the shared ones,
which it restarts), both engines twice over, and injects faults for ``--minutes``; see
bench/README.md. This runs the 60 s version with a fixed seed and asserts the figures the
soak is for: no duplicate effect, no stuck run, no process dying on its own, at most 5 % of
the due slots lost and those only within a restart of Postgres or Redis.
"""

import glob
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.bench_smoke import run_bench
from tests.helpers import clean_env

SEED = "20261130"
MARKS = ("taskhub-soak-", "taskhub-bench-soak-")  # in the paths the soak's processes are given


def _needs_binaries() -> None:
    if glob.glob("/usr/lib/postgresql/*/bin/postgres") and shutil.which("redis-server"):
        return
    message = "the soak needs Postgres server binaries under /usr/lib/postgresql and redis-server"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI must provide them)")
    pytest.skip(message)


def _soak_processes() -> set[int]:
    """PIDs of processes whose command line or environment names one of the soak's directories."""
    found = set()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            text = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
        except OSError:
            continue
        if any(mark.encode() in text for mark in MARKS):
            found.add(int(proc.name))
    return found


def _figures(out: str) -> dict[str, float]:
    rows = re.findall(r"^([a-z_]+)\s+(-?\d+(?:\.\d+)?)\s+\S+$", out, re.MULTILINE)
    return {name: float(value) for name, value in rows}


@pytest.mark.timeout(600)
def test_sixty_seconds_of_chaos_meet_the_wanted_figures():
    _needs_binaries()
    before = _soak_processes()
    status, out, err = run_bench("bench/soak.py", "--minutes", "1", "--seed", SEED, env=clean_env(), timeout=540)
    assert _soak_processes() - before == set(), "the soak left processes running"
    figures = _figures(out)
    assert out.startswith(f"seed: {SEED}\n"), out
    assert figures["slots_due"] > 100, out
    assert (figures["duplicate_effects"], figures["stuck_runs"], figures["self_deaths"]) == (0, 0, 0), out
    assert figures["lost_pct"] <= 5 and figures["lost_elsewhere"] == 0, out
    assert status == 0 and "wanted figures: met" in out, out + err[-3000:]


def test_a_bad_argument_is_one_line():
    status, out, err = run_bench("bench/soak.py", "--minutes", "0", env=clean_env(), timeout=60)
    assert (status, out) == (2, "")
    assert err == "soak.py: error: --minutes must be more than 0 and at most 1440\n"
