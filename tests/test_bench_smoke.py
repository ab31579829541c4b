"""The benchmarks run: each one's --quick mode exits 0 and prints its table with figures.

No timed asserts: the figures are for people (see bench/README.md). Each benchmark starts
real Celery workers and beats against Postgres (databases taskhub_bench_*) and Redis DBs
12-13 of the test servers, so these skip locally (and fail under CI) when either is down.
"""

import re

import pytest

from tests.bench_smoke import assert_table, run_bench
from tests.helpers import clean_env
from tests.services import POSTGRES_URL, REDIS_URL, require

FIGURE = re.compile(r"-?\d+(?:\.\d+)?|n/a")
ROWS = {
    "celery_run_path": ["taskhub:", "a:", "b:", "c:", "d:", "taskhub*:", "a*:"],
    "edit_to_effect": ["taskhub beat", "django-celery-beat"],
    "fire_lateness": ["taskhub beat", "django-celery-beat"],
    "beat_scale": ["taskhub beat", "django-celery-beat"],
    "burst": [
        "taskhub runapscheduler",
        "stock django-apscheduler",
        "taskhub beat + worker c2",
        "django-celery-beat + plain task c2",
    ],
}


def bench_env() -> dict[str, str]:
    redis_server = REDIS_URL.rsplit("/", 1)[0]
    return clean_env(
        BENCH_POSTGRES_URL=POSTGRES_URL.rsplit("/", 1)[0],
        BENCH_REDIS_URL=f"{redis_server}/12",
        BENCH_PEER_REDIS_URL=f"{redis_server}/13",
    )


@pytest.mark.timeout(400)
@pytest.mark.parametrize("name", list(ROWS))
def test_quick_mode_prints_its_table(name):
    require(POSTGRES_URL, "Postgres")
    require(REDIS_URL, "Redis")
    status, out, err = run_bench(f"bench/{name}.py", "--quick", env=bench_env(), timeout=300)
    assert status == 0, err[-3000:]
    assert_table(name, out, ROWS[name], FIGURE)


def test_a_bad_argument_is_one_line():
    status, out, err = run_bench("bench/fire_lateness.py", "--nope", env=bench_env(), timeout=60)
    assert (status, out) == (2, "")
    assert err == "fire_lateness.py: error: unrecognized arguments: --nope\n"
