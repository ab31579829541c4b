"""``bin/setup``'s decisions: install once per change of the requirements, whichever way it runs;
make the demo job on a new database only.

``bin/run`` calls ``bin/setup`` and ``bin/test`` calls ``bin/setup --dev``; switching between them
must not reinstall each side's requirements every time. The script runs for real in a copy of
the checkout whose ``.venv/bin/python`` only records what it is asked to do (nothing is installed).
"""

import os
import shutil
import stat
import subprocess

import pytest

from tests.helpers import ROOT

PIP = "-m pip install"


@pytest.fixture
def checkout(tmp_path):
    (tmp_path / "bin").mkdir()
    shutil.copy(ROOT / "bin" / "setup", tmp_path / "bin" / "setup")
    for name in ("requirements.txt", "requirements-dev.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    for fake in (tmp_path / ".venv" / "bin" / "python", tmp_path / "tools" / "chromium"):
        fake.parent.mkdir(parents=True, exist_ok=True)
        # It answers `manage.py migrate` with what the test puts in $MIGRATE_SAYS.
        fake.write_text(
            f'#!/bin/sh\necho "$*" >> "{tmp_path}/calls"\n'
            'case "$*" in "manage.py migrate"*) printf "%s\\n" "$MIGRATE_SAYS";; esac\n'
        )
        fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return tmp_path


def setup(checkout, *args, migrate_says="") -> list[str]:
    """Run ``bin/setup ARGS`` in the copy; the pip installs it asked for."""
    return [call.split(PIP, 1)[1].strip() for call in calls(checkout, *args, migrate_says=migrate_says) if PIP in call]


def calls(checkout, *args, migrate_says="") -> list[str]:
    """Run ``bin/setup ARGS`` in the copy; every call of ``.venv/bin/python``."""
    (checkout / "calls").write_text("")
    env = {
        **os.environ,
        "SECRET_KEY": "k",
        "PATH": f"{checkout / 'tools'}:{os.environ['PATH']}",
        "MIGRATE_SAYS": migrate_says,
    }
    result = subprocess.run(["bash", "bin/setup", *args], cwd=checkout, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return (checkout / "calls").read_text().splitlines()


def test_switching_between_bin_run_and_bin_test_installs_nothing_again(checkout):
    assert setup(checkout, "--dev") == ["--quiet --disable-pip-version-check -r requirements-dev.txt"]
    for args in [(), ("--dev",), (), ("--dev",)]:
        assert setup(checkout, *args) == []


def test_a_runtime_install_is_completed_by_the_first_dev_setup_only(checkout):
    assert setup(checkout) == ["--quiet --disable-pip-version-check -r requirements.txt"]
    assert setup(checkout) == []
    assert setup(checkout, "--dev") == ["--quiet --disable-pip-version-check -r requirements-dev.txt"]
    assert setup(checkout) == [] and setup(checkout, "--dev") == []


def test_a_changed_requirements_file_installs_again(checkout):
    setup(checkout, "--dev")
    with open(checkout / "requirements.txt", "a") as requirements:
        requirements.write("# a new pin\n")
    assert setup(checkout) == ["--quiet --disable-pip-version-check -r requirements.txt"]
    assert setup(checkout, "--dev") == ["--quiet --disable-pip-version-check -r requirements-dev.txt"]
    assert setup(checkout) == []


def test_a_new_database_gets_the_demo_job_and_an_existing_one_does_not(checkout):
    fresh = "Running migrations:\n  Applying tasks_app.0001_initial... OK\n  Applying tasks_app.0002_api_clients... OK"
    assert calls(checkout, migrate_says=fresh)[-1] == "manage.py create_demo_job"
    upgraded = "Running migrations:\n  Applying tasks_app.0008_apiclient_may_run_paused... OK"
    for says in (upgraded, "Running migrations:\n  No migrations to apply."):
        assert "manage.py create_demo_job" not in calls(checkout, migrate_says=says)
