"""The project as a whole: deploy checks, the Celery app, migrations, the admin user, the README."""

import re
import sqlite3
import stat

import pytest
from celery import Celery
from django.contrib.auth import get_user_model
from django.core.management import call_command

from tests.helpers import ROOT, clean_env, manage

PRODUCTION = dict(
    SECRET_KEY="p" * 30 + "-production-secret-with-enough-variety-0123456789",
    ALLOWED_HOSTS="taskhub.example.com",
    CSRF_TRUSTED_ORIGINS="https://taskhub.example.com",
    TASKHUB_HTTPS="true",
    TASKHUB_BEHIND_PROXY="true",
)


def test_check_deploy_is_clean_under_production_variables():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=clean_env(**PRODUCTION))
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_the_database_checks_on_sqlite_say_nothing_a_new_user_must_act_on(tmp_path):
    """bin/setup's migrate printed SQLite's models.W040 (an index's INCLUDE column) on every first run."""
    env = clean_env(SECRET_KEY="k", TASKHUB_SQLITE_PATH=str(tmp_path / "db.sqlite3"))
    result = manage("check", "--database", "default", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stderr
    assert "W040" not in result.stdout + result.stderr


def test_check_deploy_warns_without_them():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=clean_env(SECRET_KEY="short"))
    assert result.returncode != 0
    assert "security.W004" in result.stderr and "security.W008" in result.stderr


def test_healthz_is_exempt_from_the_https_redirect(client):
    from django.test import override_settings

    with override_settings(SECURE_SSL_REDIRECT=True):
        assert client.get("/admin/login/").status_code == 301
        assert client.get("/healthz").status_code in (200, 503)


def test_celery_app_is_json_only_and_configured_from_django_settings():
    from taskhub import celery_app

    assert isinstance(celery_app, Celery) and celery_app.main == "taskhub"
    conf = celery_app.conf
    assert conf.task_serializer == conf.result_serializer == "json"
    assert list(conf.accept_content) == ["json"]
    assert conf.result_backend == "django-db"
    assert conf.beat_scheduler == "tasks_app.engines.celery.beat:TaskhubScheduler"
    assert conf.task_acks_late and conf.task_reject_on_worker_lost and conf.worker_prefetch_multiplier == 1


@pytest.mark.django_db
def test_all_migrations_are_applied_on_the_test_database():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    assert executor.migration_plan(executor.loader.graph.leaf_nodes()) == []
    applied = {app for app, _ in executor.loader.applied_migrations}
    assert {"django_celery_beat", "django_celery_results", "django_apscheduler"} <= applied


def test_all_migrations_apply_on_sqlite(tmp_path):
    path = tmp_path / "fresh.sqlite3"
    result = manage("migrate", "--noinput", env=clean_env(SECRET_KEY="k", TASKHUB_SQLITE_PATH=str(path)), timeout=180)
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(path) as db:
        tables = {row[0] for row in db.execute("select name from sqlite_master where type='table'")}
        assert db.execute("pragma journal_mode").fetchone()[0] == "wal"
    assert {
        "django_celery_beat_periodictask",
        "django_celery_results_taskresult",
        "django_apscheduler_djangojob",
    } <= tables


@pytest.mark.django_db
def test_models_and_migrations_agree():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


@pytest.mark.django_db
def test_ensure_admin_prints_a_one_time_password_once(capsys, monkeypatch):
    monkeypatch.delenv("TASKHUB_ADMIN_PASSWORD", raising=False)
    monkeypatch.setenv("TASKHUB_ADMIN_USER", "ops")
    call_command("ensure_admin")
    first = capsys.readouterr().out
    password = re.search(r"one-time password: (\S+)", first).group(1)
    assert get_user_model().objects.get(username="ops").check_password(password)
    call_command("ensure_admin")
    assert "password" not in capsys.readouterr().out.split("exists")[-1]


@pytest.mark.django_db
def test_ensure_admin_uses_the_configured_password(capsys, monkeypatch):
    monkeypatch.setenv("TASKHUB_ADMIN_USER", "ops")
    monkeypatch.setenv("TASKHUB_ADMIN_PASSWORD", "correct horse battery")
    call_command("ensure_admin")
    user = get_user_model().objects.get(username="ops")
    assert user.is_superuser and user.check_password("correct horse battery")
    assert "correct horse" not in capsys.readouterr().out


def test_readme_starts_with_the_two_commands_and_they_exist():
    text = (ROOT / "README.md").read_text()
    commands = re.findall(r"^\s*(bin/\S+)", text.split("## ", 1)[0], flags=re.M)
    assert commands[:2] == ["bin/run", "bin/test"]
    for command in commands[:2]:
        assert (ROOT / command).stat().st_mode & stat.S_IXUSR


def test_every_variable_the_project_reads_is_in_the_readme_settings_table():
    table = (ROOT / "README.md").read_text().split("## Settings", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Z_]+)`", table, flags=re.M))
    sources = [
        ROOT / "taskhub" / "settings.py",
        ROOT / "taskhub" / "config.py",
        *(ROOT / "tasks_app" / "management" / "commands").glob("*.py"),
    ]
    pattern = r"(?:env\.\w+\(|_VARIABLE = )\"([A-Z][A-Z_]+)\""
    read = {name for path in sources for name in re.findall(pattern, path.read_text())}
    assert len(read) > 20
    assert read <= documented, f"not in the README: {sorted(read - documented)}"
