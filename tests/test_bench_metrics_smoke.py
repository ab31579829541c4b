"""The /metrics benchmark runs: its --quick mode exits 0 and prints its table with figures.

No timed asserts: the figures are for people (see bench/README.md). It fills a Postgres
database (``taskhub_bench_metrics``; no Redis), so it skips locally (and fails under CI)
when Postgres is down.
"""

import re

import pytest

from tests.bench_smoke import assert_table, run_bench
from tests.helpers import clean_env
from tests.services import POSTGRES_URL, require

FIGURE = re.compile(r"-?\d+(?:\.\d+)?|n/a")


@pytest.mark.timeout(400)
def test_quick_mode_prints_its_table():
    require(POSTGRES_URL, "Postgres")
    env = clean_env(BENCH_POSTGRES_URL=POSTGRES_URL.rsplit("/", 1)[0])
    status, out, err = run_bench("bench/metrics_scrape.py", "--quick", env=env, timeout=330)
    assert status == 0, err[-3000:]
    assert_table("metrics_scrape", out, ["taskhub /metrics", "history row by row"], FIGURE)


def test_a_bad_argument_is_one_line():
    status, out, err = run_bench("bench/metrics_scrape.py", "--runs", "many", env=clean_env(), timeout=60)
    assert (status, out) == (2, "")
    assert err == "metrics_scrape.py: error: argument --runs: invalid int value: 'many'\n"
