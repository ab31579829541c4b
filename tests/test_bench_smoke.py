"""The benchmarks run: each one's --quick mode exits 0 and prints its table with figures.

No timed asserts: the figures are for people (see bench/README.md). Each benchmark starts
real Celery workers and beats against Postgres (databases taskhub_bench_*) and Redis DBs
12-13 of the test servers, so these skip locally (and fail under CI) when either is down.
"""

import os
import re
import signal
import subprocess
import sys

import pytest

from tests.helpers import ROOT, clean_env
from tests.services import POSTGRES_URL, REDIS_URL, require

FIGURE = re.compile(r"-?\d+(?:\.\d+)?|n/a")
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
ROWS = {
    "celery_run_path": ["taskhub:", "a:", "b:", "c:", "d:", "taskhub*:", "a*:"],
    "edit_to_effect": ["taskhub beat", "django-celery-beat"],
    "fire_lateness": ["taskhub beat", "django-celery-beat"],
    "beat_scale": ["taskhub beat", "django-celery-beat"],
}


def bench_env() -> dict[str, str]:
    redis_server = REDIS_URL.rsplit("/", 1)[0]
    return clean_env(BENCH_POSTGRES_URL=POSTGRES_URL.rsplit("/", 1)[0], BENCH_REDIS_URL=f"{redis_server}/12",
                     BENCH_PEER_REDIS_URL=f"{redis_server}/13")


def run_bench(*args: str, timeout: float = 300) -> tuple[int, str, str]:
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=bench_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)  # the script stops its workers and beats, drops its databases
        out, err = proc.communicate(timeout=60)
        pytest.fail(f"{args[0]} ran longer than {timeout:g} s:\n{err[-3000:]}")
    return proc.returncode, out, err


@pytest.mark.timeout(400)
@pytest.mark.parametrize("name", list(ROWS))
def test_quick_mode_prints_its_table(name):
    require(POSTGRES_URL, "Postgres")
    require(REDIS_URL, "Redis")
    status, out, err = run_bench(f"bench/{name}.py", "--quick")
    assert status == 0, err[-3000:]
    lines = out.splitlines()
    assert lines[0].startswith(f"== {name}:"), out
    columns = len(lines[1].split())  # column names have no spaces; the first is the row's label
    for label in ROWS[name]:
        row = next((line for line in lines[2:] if line.startswith(label)), None)
        assert row is not None, f"no row {label!r} in:\n{out}"
        figures = row.split()[-(columns - 1):]
        assert all(FIGURE.fullmatch(f) for f in figures), row
        assert any(NUMBER.fullmatch(f) for f in figures), row


def test_a_bad_argument_is_one_line():
    status, out, err = run_bench("bench/fire_lateness.py", "--nope", timeout=60)
    assert (status, out) == (2, "")
    assert err == "fire_lateness.py: error: unrecognized arguments: --nope\n"
