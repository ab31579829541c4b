"""The APScheduler benchmarks run: each one's --quick mode exits 0 and prints its table with figures.

No timed asserts: the figures are for people (see bench/README.md). Each benchmark starts
``manage.py runapscheduler`` and the stock django-apscheduler peer against Postgres
(databases ``taskhub_apsbench_*``; no Redis), so these skip locally (and fail under CI)
when Postgres is down.
"""

import os
import re
import signal
import subprocess
import sys

import pytest

from tests.helpers import ROOT, clean_env
from tests.services import POSTGRES_URL, require

FIGURE = re.compile(r"-?\d+(?:\.\d+)?|n/a|never")
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
ROWS = {
    "aps_edit_to_effect": ["taskhub runapscheduler", "stock django-apscheduler"],
    "aps_fire_lateness": ["taskhub runapscheduler", "stock django-apscheduler"],
    "aps_scale": ["taskhub runapscheduler", "stock django-apscheduler"],
}


def run_bench(*args: str, timeout: float = 330) -> tuple[int, str, str]:
    env = clean_env(BENCH_POSTGRES_URL=POSTGRES_URL.rsplit("/", 1)[0])
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)  # the script stops its schedulers and drops its databases
        out, err = proc.communicate(timeout=60)
        pytest.fail(f"{args[0]} ran longer than {timeout:g} s:\n{err[-3000:]}")
    return proc.returncode, out, err


@pytest.mark.timeout(400)
@pytest.mark.parametrize("name", list(ROWS))
def test_quick_mode_prints_its_table(name):
    require(POSTGRES_URL, "Postgres")
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
    status, out, err = run_bench("bench/aps_scale.py", "--nope", timeout=60)
    assert (status, out) == (2, "")
    assert err == "aps_scale.py: error: unrecognized arguments: --nope\n"
