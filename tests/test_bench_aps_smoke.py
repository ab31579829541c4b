"""The APScheduler benchmarks run: each one's --quick mode exits 0 and prints its table with figures.

No timed asserts: the figures are for people (see bench/README.md). Each benchmark starts
``manage.py runapscheduler`` and the stock django-apscheduler peer against Postgres
(databases ``taskhub_apsbench_*``; no Redis), so these skip locally (and fail under CI)
when Postgres is down.
"""

import re

import pytest

from tests.bench_smoke import assert_table, run_bench
from tests.helpers import clean_env
from tests.services import POSTGRES_URL, require

FIGURE = re.compile(r"-?\d+(?:\.\d+)?|n/a|never")
ROWS = {
    "aps_edit_to_effect": ["taskhub runapscheduler", "stock django-apscheduler"],
    "aps_fire_lateness": ["taskhub runapscheduler", "stock django-apscheduler"],
    "aps_scale": ["taskhub runapscheduler", "stock django-apscheduler"],
}


def bench_env() -> dict[str, str]:
    return clean_env(BENCH_POSTGRES_URL=POSTGRES_URL.rsplit("/", 1)[0])


@pytest.mark.timeout(400)
@pytest.mark.parametrize("name", list(ROWS))
def test_quick_mode_prints_its_table(name):
    require(POSTGRES_URL, "Postgres")
    status, out, err = run_bench(f"bench/{name}.py", "--quick", env=bench_env(), timeout=330)
    assert status == 0, err[-3000:]
    assert_table(name, out, ROWS[name], FIGURE)


def test_a_bad_argument_is_one_line():
    status, out, err = run_bench("bench/aps_scale.py", "--nope", env=bench_env(), timeout=60)
    assert (status, out) == (2, "")
    assert err == "aps_scale.py: error: unrecognized arguments: --nope\n"
