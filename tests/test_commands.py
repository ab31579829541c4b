"""Commands and system checks, as a person or a deploy script runs them."""

import json
import os
import pty
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError

from tasks_app.models import Job
from tests.helpers import ROOT, clean_env, manage


def test_handler_modules_come_from_the_environment_variable(tmp_path):
    (tmp_path / "team_handlers.py").write_text(
        "from tasks_app.handlers.registry import handler\n\n"
        "@handler(timeout=5)\nasync def send_digest(team: str, limit: int = 10) -> int:\n"
        "    '''Mail the team its digest.'''\n    return limit\n"
    )
    env = clean_env(
        SECRET_KEY="k", PYTHONPATH=str(tmp_path), TASKHUB_HANDLER_MODULES="tasks_app.handlers.bundled,team_handlers"
    )
    result = manage("list_handlers", "--json", env=env)
    handlers = {h["name"]: h for h in json.loads(result.stdout)}
    assert {"number_sum", "send_digest"} <= set(handlers)
    digest = handlers["send_digest"]
    assert digest["description"] == "Mail the team its digest." and digest["timeout"] == 5
    assert [p["text"] for p in digest["parameters"]] == ["team: str", "limit: int = 10"]
    assert digest["example_kwargs"] == {"team": "text", "limit": 10}


def test_a_handler_module_that_cannot_be_imported_fails_the_checks_in_one_line():
    env = clean_env(SECRET_KEY="k", TASKHUB_HANDLER_MODULES="tasks_app.handlers.bundled,no_such_module")
    result = manage("check", env=env)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "(taskhub.E001) cannot import handler module 'no_such_module': ModuleNotFoundError" in result.stderr


@pytest.mark.django_db
def test_a_stored_job_naming_an_unregistered_handler_fails_the_database_checks(make_job):
    job = make_job()
    Job.objects.filter(pk=job.pk).update(handler="renamed_away")
    with pytest.raises(SystemCheckError, match=r"taskhub.E002.*'renamed_away'"):
        call_command("check", databases=["default"])


@pytest.mark.django_db
def test_the_checks_pass_for_registered_handlers(make_job):
    make_job()
    call_command("check", databases=["default"])


def test_list_handlers_prints_signatures_and_defaults(capsys):
    call_command("list_handlers")
    out = capsys.readouterr().out
    assert "number_sum(x: int, y: int)" in out
    assert "cleanup_runs(older_than_days: int = 30, batch_size: int = 1000)" in out
    assert "timeout=600s" in out
    assert '    example kwargs: {"x": 1, "y": 1}\n' in out  # what a job's kwargs box or run_job --kwargs takes


@pytest.mark.django_db
def test_cleanup_runs_command_reports_what_it_deleted(make_job, capsys):
    import datetime as dt

    from django.utils import timezone

    from tasks_app.models import JobRun

    job = make_job()
    JobRun.objects.create(
        job=job, engine="celery", status="succeeded", scheduled_for=timezone.now() - dt.timedelta(days=9)
    )
    call_command("cleanup_runs", "--older-than", "7")
    assert capsys.readouterr().out.strip() == "deleted 1 run(s) older than 7 day(s)"


def test_cleanup_runs_refuses_a_negative_age_in_one_line():
    result = manage("cleanup_runs", "--older-than", "-1", env=clean_env(SECRET_KEY="k"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "CommandError: --older-than must be 0 to 36500 and --batch-size 1 to 10000"
    ]


@pytest.mark.parametrize(
    "options",
    [
        ["--older-than", "-1"],
        ["--older-than", "36501"],
        ["--older-than", "999999999"],  # was an OverflowError's traceback (date value out of range)
        ["--older-than", "30", "--batch-size", "0"],
        ["--older-than", "30", "--batch-size", "99999999999999999999"],  # was "datatype mismatch" from SQLite
    ],
)
def test_cleanup_runs_refuses_numbers_out_of_range_with_one_message(options):
    with pytest.raises(CommandError, match="^--older-than must be 0 to 36500 and --batch-size 1 to 10000$"):
        call_command("cleanup_runs", *options)


@pytest.mark.parametrize("days, batch_size", [(-1, 1000), (36_501, 1000), (10**9, 1000), (30, 0), (30, 10**20)])
def test_retention_refuses_what_it_cannot_do_before_touching_a_row(days, batch_size):
    """The bundled cleanup_runs handler calls it with a job's kwargs: a clear error, not an OverflowError."""
    from tasks_app.models.retention import delete_runs_older_than

    with pytest.raises(ValueError, match="^days must be 0 to 36500 and batch_size 1 to 10000$"):
        delete_runs_older_than(days, batch_size)


@pytest.mark.parametrize("options", [["--workers", "0"], ["--workers", "-1"], ["--workers", "1001"], ["--grace", "-5"]])
def test_runapscheduler_refuses_numbers_out_of_range_with_one_message(options):
    with pytest.raises(CommandError, match="^--workers must be 1 to 1000 and --grace 0 to 86400 seconds$"):
        call_command("runapscheduler", *options)


def test_runapscheduler_with_no_workers_is_one_line_not_a_traceback():
    result = manage("runapscheduler", "--workers", "0", env=clean_env(SECRET_KEY="k"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "CommandError: --workers must be 1 to 1000 and --grace 0 to 86400 seconds"
    ]


def test_a_celery_setting_taskhub_relies_on_is_checked_at_start_up():
    from django.core.checks import run_checks
    from django.test import override_settings

    from taskhub.celery import app

    app.conf.task_acks_late = False
    try:
        errors = [e for e in run_checks() if e.id == "taskhub.E003"]
    finally:
        app.conf.task_acks_late = True
    assert [e.msg.split(";")[0] for e in errors] == ["Celery setting task_acks_late is False"]
    with override_settings(TASKHUB={"MAX_RETRY_DELAY_SECONDS": 10_000}):
        assert [e.id for e in run_checks() if e.id.startswith("taskhub.")] == ["taskhub.E004"]


@pytest.mark.django_db
def test_a_job_that_can_outlive_the_visibility_timeout_fails_the_database_checks(make_job):
    make_job(engine="celery", timeout_seconds=7200)
    with pytest.raises(SystemCheckError, match=r"taskhub.E005.*visibility_timeout \(7200 s\)"):
        call_command("check", databases=["default"])


@pytest.mark.django_db
def test_on_rabbitmq_no_check_asks_for_a_visibility_timeout(make_job):
    """RabbitMQ re-delivers a message when its consumer's connection closes, never after a timeout:
    a long job and a long retry delay are fine there, while on Redis they fail E004 and E005."""
    from django.core.checks import run_checks
    from django.test import override_settings

    from tests.brokers import celery_app_on
    from tests.services import AMQP_URL

    make_job(engine="celery", timeout_seconds=7200)
    with override_settings(TASKHUB={"MAX_RETRY_DELAY_SECONDS": 10_000}):
        on_redis = [e.id for e in run_checks(databases=["default"]) if e.id.startswith("taskhub.")]
        with celery_app_on(AMQP_URL):  # settings only: no connection is made
            on_rabbitmq = [e.id for e in run_checks(databases=["default"]) if e.id.startswith("taskhub.")]
    assert (sorted(on_redis), on_rabbitmq) == (["taskhub.E004", "taskhub.E005"], [])


PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----"


def decrypted(token: str, key: str) -> str:
    from taskhub.config import decrypt_values

    return decrypt_values({"VALUE": token, "TASKHUB_SECRETS_KEY": key})["VALUE"]


def test_encrypt_secret_encrypts_every_line_of_its_input():
    key = Fernet.generate_key().decode()
    result = manage("encrypt_secret", env=clean_env(SECRET_KEY="k", TASKHUB_SECRETS_KEY=key), input=PEM + "\n")
    assert result.returncode == 0, result.stderr
    assert decrypted(result.stdout.strip(), key) == PEM


def test_encrypt_secret_reads_one_line_at_its_prompt_on_a_terminal():
    """Typed at a terminal, the value ends with Enter: the prompt does not wait for end of input."""
    key = Fernet.generate_key().decode()
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "encrypt_secret"],
        cwd=ROOT,
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(SECRET_KEY="k", TASKHUB_SECRETS_KEY=key),
    )
    os.close(terminal)
    try:
        os.write(controller, b"rosebud\n")
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(controller)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "value to encrypt" in err and decrypted(out.strip(), key) == "rosebud"


@pytest.mark.django_db
def test_create_demo_job_makes_the_readmes_job_once_and_leaves_an_existing_one_alone(capsys):
    call_command("create_demo_job")
    job = Job.objects.get(name="demo-add-numbers")
    assert (job.handler, job.kwargs, job.engine, job.enabled) == ("number_sum", {"x": 1, "y": 2}, "apscheduler", True)
    assert capsys.readouterr().out.startswith('demo job \'demo-add-numbers\' created: number_sum {"x": 1, "y": 2}; ')
    Job.objects.filter(pk=job.pk).update(kwargs={"x": 20, "y": 22})
    call_command("create_demo_job")
    assert "exists (left as it is)" in capsys.readouterr().out
    assert Job.objects.get(name="demo-add-numbers").kwargs == {"x": 20, "y": 22}
