"""What the benchmark smoke tests share: running a script as a user would, and reading its table."""

import os
import re
import signal
import subprocess
import sys

import pytest

from tests.helpers import ROOT

NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def run_bench(*args: str, env: dict[str, str], timeout: float) -> tuple[int, str, str]:
    """Run a ``bench/*.py`` script in its own session; on a timeout, SIGTERM it (it cleans up) and fail."""
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)  # the script stops its processes and drops its databases
        out, err = proc.communicate(timeout=60)
        pytest.fail(f"{args[0]} ran longer than {timeout:g} s:\n{err[-3000:]}")
    return proc.returncode, out, err


def assert_table(name: str, out: str, labels: list[str], figure: re.Pattern) -> None:
    """``out`` is ``name``'s table: a row per label whose cells all match ``figure``, one at least a number."""
    lines = out.splitlines()
    assert lines[0].startswith(f"== {name}:"), out
    columns = len(lines[1].split())  # column names have no spaces; the first is the row's label
    for label in labels:
        row = next((line for line in lines[2:] if line.startswith(label)), None)
        assert row is not None, f"no row {label!r} in:\n{out}"
        figures = row.split()[-(columns - 1) :]
        assert all(figure.fullmatch(f) for f in figures), row
        assert any(NUMBER.fullmatch(f) for f in figures), row
