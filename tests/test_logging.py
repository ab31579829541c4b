"""JSON lines with the run's context, written off the caller's thread, also after fork."""

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest

from taskhub import log
from tasks_app.engines import request_run
from tests.helpers import ROOT, clean_env, python, wait_for
from tests.processes import processes  # noqa: F401  (fixture)

LOG_SOME = """
import logging
from taskhub.log import log_context
logger = logging.getLogger("tests.app")
with log_context(job="nightly-report", run=42, engine="celery", attempt=2):
    logger.info("inside %s", "context", extra={"rows": 3})
logger.warning("outside")
try:
    1 / 0
except ZeroDivisionError:
    logger.exception("it broke")
"""


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_console_gets_one_json_object_per_line_with_context_fields():
    result = python(LOG_SOME, env=clean_env(SECRET_KEY="k"))
    records = [r for r in json_lines(result.stderr) if r["logger"] == "tests.app"]
    inside, outside, broke = records
    assert inside["message"] == "inside context" and inside["rows"] == 3
    assert {k: inside[k] for k in log.CONTEXT_FIELDS} == {
        "job": "nightly-report",
        "run": 42,
        "engine": "celery",
        "attempt": 2,
    }
    assert inside["level"] == "INFO" and inside["time"] and inside["pid"]
    assert not set(log.CONTEXT_FIELDS) & set(outside)
    assert broke["message"] == "it broke" and "ZeroDivisionError" in broke["exc_info"]


def test_rotating_file_gets_the_same_json_lines(tmp_path):
    path = tmp_path / "logs" / "taskhub.log"
    env = clean_env(
        SECRET_KEY="k", TASKHUB_LOG_FILE=str(path), TASKHUB_LOG_MAX_BYTES="2000", TASKHUB_LOG_BACKUP_COUNT="2"
    )
    python("import logging\nfor i in range(100): logging.getLogger('tests.bulk').info('line %d', i)", env=env)
    files = sorted(tmp_path.joinpath("logs").iterdir())
    assert [f.name for f in files] == ["taskhub.log", "taskhub.log.1", "taskhub.log.2"]
    for f in files:
        assert os.path.getsize(f) <= 2000
        assert all(r["logger"] == "tests.bulk" for r in json_lines(f.read_text()))
    assert json_lines(path.read_text())[-1]["message"] == "line 99"


class RecordingHandler(logging.Handler):
    def __init__(self):
        super().__init__()
        self.threads, self.records = [], []

    def emit(self, record):
        self.threads.append(threading.current_thread().name)
        self.records.append(record)


@pytest.fixture
def writer(monkeypatch):
    """Logging configured by taskhub, with a recording handler behind the queue."""
    handler = RecordingHandler()
    monkeypatch.setattr(log, "_output_handlers", lambda settings, in_child=False: [handler])
    log.configure({"level": "INFO"})
    yield handler
    log.stop()
    from django.conf import settings

    log.configure(settings.LOGGING)


def test_records_are_written_by_the_listener_thread_not_the_caller(writer):
    with log.log_context(run=7):
        logging.getLogger("tests.queue").info("hello")
    log.stop()
    [record] = [r for r in writer.records if r.name == "tests.queue"]
    assert record.run == 7
    assert writer.threads and threading.current_thread().name not in writer.threads


def test_a_forked_child_still_writes_its_logs(tmp_path):
    path = tmp_path / "fork.log"
    code = (
        "import logging, os\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    logging.getLogger('tests.child').info('from the child')\n"
        "    raise SystemExit(0)\n"
        "os.waitpid(pid, 0)\n"
        "logging.getLogger('tests.parent').info('from the parent')\n"
    )
    python(code, env=clean_env(SECRET_KEY="k", TASKHUB_LOG_FILE=str(path)))
    messages = {r["message"] for r in json_lines(path.read_text())}
    assert {"from the child", "from the parent"} <= messages


def test_unknown_context_field_is_an_error():
    with pytest.raises(TypeError, match="colour"):
        with log.log_context(colour="red"):
            pass


def test_gunicorn_logs_json_lines_too(capsys):
    import logging.config
    import runpy

    from tests.helpers import ROOT

    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))["logconfig_dict"]
    logging.config.dictConfig(config)
    logging.getLogger("gunicorn.error").info("Booting worker with pid: %s", 123)
    [record] = json_lines(capsys.readouterr().err)
    assert record["logger"] == "gunicorn.error" and record["message"] == "Booting worker with pid: 123"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_under_gunicorn_a_request_logs_each_record_once_as_json(tmp_path):
    """Gunicorn's default root handler must not write our records a second time."""
    from tests.helpers import ROOT

    port, out = free_port(), open(tmp_path / "gunicorn.log", "w")
    env = clean_env(SECRET_KEY="k", DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(ROOT / "gunicorn.conf.py"),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--no-control-socket",
            "taskhub.wsgi:application",
        ],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:

        def answers():
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/no-such-page-42", timeout=2)
            except urllib.error.HTTPError as exc:
                return exc.code
            except OSError:
                return None

        assert wait_for(answers, timeout=30, interval=0.2) == 404
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    lines = [line for line in (tmp_path / "gunicorn.log").read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    about_it = [r for r in records if "no-such-page-42" in r["message"]]
    assert sorted(r["logger"] for r in about_it) == ["django.request", "gunicorn.access"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_a_traceback_written_to_a_celery_workers_stderr_is_one_json_record(make_job, processes):
    from tasks_app.models import JobRun

    worker = processes.worker(concurrency=1)
    job = make_job(engine="celery", handler="test_print_traceback", kwargs={"marker": "marker-5f3a"})
    run = request_run(job)
    assert wait_for(lambda: JobRun.objects.get(pk=run.pk).status == "succeeded", timeout=60)
    assert wait_for(lambda: "RuntimeError: marker-5f3a" in processes.output(worker), timeout=10)
    processes.stop_all()
    records = [json.loads(line) for line in processes.output(worker).splitlines() if line.startswith("{")]
    [printed] = [r for r in records if r["logger"] == "celery.redirected" and r.get("run") == run.pk]
    assert printed["message"].startswith("Traceback (most recent call last):\n  File ")
    assert printed["message"].endswith("raise RuntimeError(marker)\nRuntimeError: marker-5f3a")
    assert printed["stream"] == "stderr" and printed["job"] == job.name


def test_an_uncaught_exception_is_one_json_record_in_a_thread_and_at_exit():
    code = (
        "import threading\n"
        "def fail(): raise KeyError('in-a-thread')\n"
        "t = threading.Thread(target=fail); t.start(); t.join()\n"
        "raise ValueError('at-exit')\n"
    )
    result = python(code, env=clean_env(SECRET_KEY="k"))
    assert result.returncode == 1
    records = json_lines(result.stderr)  # every line is one JSON object
    thread, at_exit = [r for r in records if r["level"] == "CRITICAL"]
    assert "KeyError: 'in-a-thread'" in thread["exc_info"] and thread["exc_info"].startswith("Traceback")
    assert at_exit["exc_info"].endswith("ValueError: at-exit")


PRINTS_LATER = """
import sys, threading, time, traceback

def later():
    deadline = time.monotonic() + 60
    while type(sys.stderr).__name__ != "LoggingStream" and time.monotonic() < deadline:
        time.sleep(0.05)  # until beat has redirected its stderr (log_stream.redirect)
    try:
        raise ValueError("beat-marker-9c1")
    except ValueError:
        traceback.print_exc()

threading.Thread(target=later, daemon=True).start()
"""


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_a_traceback_written_to_beats_stderr_is_one_json_record(processes, tmp_path):
    """As when beat crashed: its traceback on the redirected stderr became ~950 records."""
    from tests.helpers import ROOT

    (tmp_path / "prints_later.py").write_text(PRINTS_LATER)
    beat = processes.beat(
        PYTHONPATH=f"{ROOT}:{tmp_path}",
        TASKHUB_HANDLER_MODULES="tasks_app.handlers.bundled,tests.handlers_for_tests,prints_later",
    )
    assert wait_for(lambda: "ValueError: beat-marker-9c1" in processes.output(beat), timeout=60)
    processes.stop_all()
    records = [json.loads(line) for line in processes.output(beat).splitlines() if line.startswith("{")]
    [printed] = [r for r in records if r["logger"] == "celery.redirected"]
    assert printed["message"].startswith("Traceback (most recent call last):\n")
    assert printed["message"].endswith('raise ValueError("beat-marker-9c1")\nValueError: beat-marker-9c1')


def test_a_logging_stream_makes_one_record_per_burst_with_the_writers_context():
    from taskhub.log_stream import LoggingStream

    logger, handler = logging.getLogger("tests.stream"), RecordingHandler()
    handler.addFilter(log.ContextFilter())
    logger.addHandler(handler)
    logger.propagate = False
    stream = LoggingStream(logger, logging.WARNING, "stderr")
    try:
        with log.log_context(run=5):
            for line in ("Traceback (most recent call last):\n", '  File "x.py", line 1\n', "ValueError: x\n"):
                stream.write(line)
        assert wait_for(lambda: handler.records, timeout=5)
        print("flushed at once", file=stream, flush=True)
    finally:
        logger.removeHandler(handler)
    [burst, flushed] = handler.records
    assert burst.getMessage() == 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: x'
    assert (burst.levelno, burst.stream, burst.run) == (logging.WARNING, "stderr", 5)
    assert flushed.getMessage() == "flushed at once" and not hasattr(flushed, "run")


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path):
    """``manage.py list_handlers | head -1``: the pipe closes before the command has written all."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line: every write meets a closed pipe
    try:
        done = subprocess.run(
            [sys.executable, "manage.py", "list_handlers"],
            cwd=ROOT,
            env=clean_env(SECRET_KEY="k", DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}"),
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (1, "")
