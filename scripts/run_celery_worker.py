#!/usr/bin/env python
"""Start a taskhub Celery worker: ``celery -A taskhub worker`` with options from flags or the environment.

    scripts/run_celery_worker.py                                  # queue "default", a process per CPU
    scripts/run_celery_worker.py -Q default,reports -c 4 -n reports@%h
    scripts/run_celery_worker.py --dry-run                        # print the command, start nothing
    scripts/run_celery_worker.py -- --max-tasks-per-child 100     # after --: given to celery as is

A flag wins over its variable (environment, then .env and .secrets, as for the settings):
TASKHUB_WORKER_QUEUES (default "default"), TASKHUB_WORKER_CONCURRENCY (default: the CPUs
this process may use; "auto" lets Celery size the pool from the cgroup quota),
TASKHUB_WORKER_POOL (default "prefork"), TASKHUB_WORKER_LOGLEVEL (default "INFO"),
TASKHUB_WORKER_HOSTNAME (default: Celery's celery@<host>). The script prints the command,
then becomes it (exec: the same PID), so SIGTERM reaches the worker and starts its warm
shutdown. A bad flag or value is one line on stderr and exit status 2.
"""

import argparse
import os
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POOLS = ("prefork", "threads", "solo", "eventlet", "gevent", "processes")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "FATAL")
CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

# option: (celery flag, variable, default, what a valid value is, check of the normalized value)
OPTIONS = {
    "queues": ("-Q", "TASKHUB_WORKER_QUEUES", "default", "comma-separated queue names", lambda v: all(v.split(","))),
    "concurrency": (
        "-c",
        "TASKHUB_WORKER_CONCURRENCY",
        str(CPUS),
        "a whole number >= 1 or 'auto'",
        lambda v: v == "auto" or v.isdigit() and int(v) > 0,
    ),
    "pool": ("-P", "TASKHUB_WORKER_POOL", "prefork", "one of " + "|".join(POOLS), lambda v: v in POOLS),
    "loglevel": ("-l", "TASKHUB_WORKER_LOGLEVEL", "INFO", "one of " + "|".join(LEVELS), lambda v: v in LEVELS),
    "hostname": ("-n", "TASKHUB_WORKER_HOSTNAME", "", "a worker name such as w1@%h", lambda v: True),
}


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message}\n")


def command(argv: list[str], environ) -> tuple[list[str], bool]:
    """The worker's command line and whether this is a dry run."""
    parser = Parser(prog="run_celery_worker.py", description="Start a taskhub Celery worker.")
    for name, (flag, variable, default, valid, _) in OPTIONS.items():
        help_text = f"{valid}; default ${variable} or {default or 'Celery default'}".replace("%", "%%")
        parser.add_argument(flag, f"--{name}", help=help_text)
    parser.add_argument("--dry-run", action="store_true", help="print the command without starting it")
    parser.add_argument("celery_args", nargs="*", help="after --: more `celery worker` arguments")
    args = parser.parse_args(argv)
    line = [sys.executable, "-m", "celery", "-A", "taskhub", "worker"]
    for name, (flag, variable, default, valid, check) in OPTIONS.items():
        given = getattr(args, name)
        value = (given if given is not None else environ.get(variable) or default).strip()
        value = {"queues": ",".join(q.strip() for q in value.split(",")), "loglevel": value.upper()}.get(name, value)
        if not check(value):
            parser.error(f"{f'--{name}' if given is not None else variable} must be {valid}, not {value!r}")
        line += [flag, value] if value else []
    return line + args.celery_args, args.dry_run


def main(argv: list[str] | None = None) -> None:
    sys.path.insert(0, str(ROOT))
    try:
        from taskhub.config import merged_environ  # .env and .secrets too, as the settings read them
    except ImportError as exc:
        sys.exit(f"run_celery_worker.py: error: {exc}: run it with the project's Python (.venv/bin/python)")

    line, dry_run = command(sys.argv[1:] if argv is None else argv, merged_environ(ROOT))
    print(shlex.join(line), flush=True)
    if dry_run:
        return
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    os.execv(sys.executable, line)  # the worker takes this PID: signals go straight to it


if __name__ == "__main__":
    main()
