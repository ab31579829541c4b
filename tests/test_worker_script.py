"""scripts/run_celery_worker.py: the command it prints, its one-line errors, and the worker it becomes."""

import os
import shlex
import signal
import sys
from pathlib import Path

import pytest

from tasks_app.engines.celery import client
from tests.helpers import ROOT, clean_env, run
from tests.processes import processes, wait_for  # noqa: F401  (fixture)

SCRIPT = ROOT / "scripts" / "run_celery_worker.py"
CELERY = f"{shlex.quote(sys.executable)} -m celery -A taskhub worker"


def script(*args: str, **env: str):
    return run([sys.executable, str(SCRIPT), *args], env=clean_env(**env))


def test_dry_run_prints_the_command_with_the_defaults():
    done = script("--dry-run")
    cpus = len(os.sched_getaffinity(0))
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"{CELERY} -Q default -c {cpus} -P prefork -l INFO\n"


def test_dry_run_takes_the_environment_and_flags_win_over_it():
    env = {
        "TASKHUB_WORKER_QUEUES": "default, reports",
        "TASKHUB_WORKER_CONCURRENCY": "3",
        "TASKHUB_WORKER_POOL": "threads",
        "TASKHUB_WORKER_LOGLEVEL": "warning",
    }
    assert script("--dry-run", **env).stdout == f"{CELERY} -Q default,reports -c 3 -P threads -l WARNING\n"

    flags = ["-Q", "high", "--concurrency", "auto", "-P", "solo", "-l", "debug", "-n", "w1@%h"]
    done = script("--dry-run", *flags, "--", "--max-tasks-per-child", "10", **env)
    assert done.stdout == f"{CELERY} -Q high -c auto -P solo -l DEBUG -n w1@%h --max-tasks-per-child 10\n"


def test_dry_run_reads_the_env_file(tmp_path):
    env_file = tmp_path / "worker.env"
    env_file.write_text("TASKHUB_WORKER_QUEUES=from_file\nTASKHUB_WORKER_CONCURRENCY=5\n")
    done = script("--dry-run", TASKHUB_ENV_FILE=str(env_file), TASKHUB_WORKER_CONCURRENCY="6")
    assert done.stdout == f"{CELERY} -Q from_file -c 6 -P prefork -l INFO\n"  # the environment wins


@pytest.mark.parametrize(
    "args, env, message",
    [
        (["--bogus"], {}, "unrecognized arguments: --bogus"),
        (["-c", "0"], {}, "--concurrency must be a whole number >= 1 or 'auto', not '0'"),
        (["--pool", "fork"], {}, "--pool must be one of prefork|"),
        (["-Q", "a,,b"], {}, "--queues must be comma-separated queue names"),
        (["-l", "loud"], {}, "--loglevel must be one of DEBUG|"),
        ([], {"TASKHUB_WORKER_CONCURRENCY": "many"}, "TASKHUB_WORKER_CONCURRENCY must be a whole number"),
        (["-c"], {}, "argument -c/--concurrency: expected one argument"),
    ],
)
def test_a_bad_flag_or_value_is_one_line_and_exit_status_2(args, env, message):
    done = script("--dry-run", *args, **env)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("run_celery_worker.py: error: ") and len(done.stderr.splitlines()) == 1
    assert message in done.stderr


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(240)
def test_it_becomes_a_worker_that_runs_tasks_and_stops_on_sigterm(processes):
    proc = processes.start("script", str(SCRIPT), "-Q", "default,reports", "-c", "1", "-n", "scripted@%h")
    assert wait_for(lambda: "ready" in processes.output(proc), timeout=60), processes.output(proc)[-3000:]
    output = processes.output(proc)
    assert output.splitlines()[0] == f"{CELERY} -Q default,reports -c 1 -P prefork -l INFO -n scripted@%h"
    assert "scripted@" in output and ".> reports" in output  # the banner of the worker it became
    assert b"\0-m\0celery\0" in Path(f"/proc/{proc.pid}/cmdline").read_bytes()  # same PID: exec, no child

    assert client.result(client.submit("number_sum", {"x": 1, "y": 2}, queue="reports"), timeout=30) == 3

    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    assert "worker: Warm shutdown" in processes.output(proc)
