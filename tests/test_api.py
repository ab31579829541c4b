"""The signed trigger API: signatures, replays, every status code, the admin's secrets, the README snippets."""

import datetime as dt
import hashlib
import hmac
import io
import json
import os
import re
import subprocess
import sys
import time

import pytest
from django.conf import settings
from django.contrib.messages import get_messages
from django.contrib.messages.storage.cookie import CookieStorage
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from tasks_app import signing
from tasks_app.models import JobRun
from tasks_app.models.api_clients import ApiClient, ApiNonce
from tests.helpers import ROOT, wait_for
from tests.services import POSTGRES_URL, require

CLIENTS = reverse("admin:tasks_app_apiclient_changelist")
PAUSED_409 = "job 'paused' is paused (this API client may not run paused jobs)"
MEMORY = "tasks_app.engines.memory.MemoryEngine"


# -- helpers ---------------------------------------------------------------------------------
@pytest.fixture
def api_client():
    """A saved API client (all jobs allowed) with its plaintext secret as ``.plain``."""
    client, secret = ApiClient.objects.create_client(name="ci", all_jobs=True)
    client.plain = secret
    return client


def call(method, path, client, body=b"", secret=None, http=None, **sign):
    """A request signed as ``client`` (with ``secret`` instead of its own, when given)."""
    body = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = signing.sign(client.key_id, secret or client.plain, method, path, body, **sign)
    return (http or Client()).generic(method, path, body, content_type="application/json", headers=headers)


def trigger(job_name, client, body=b"", **options):
    return call("POST", f"/api/jobs/{job_name}/trigger", client, body, **options)


def error_of(response, status):
    """The one-line JSON error of ``response``, which must have ``status``."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json" and b"\n" not in response.content
    return response.json()["error"]


def restrict(client, jobs):
    ApiClient.objects.filter(pk=client.pk).update(all_jobs=False)
    client.allowed_jobs.set(jobs)


def finished(run_id):
    return wait_for(lambda: JobRun.objects.get(pk=run_id).status not in ("queued", "running"))


def make_run(job, **fields):
    return JobRun.objects.create(
        **{
            "job": job,
            "engine": job.engine,
            "scheduled_for": timezone.now(),
            "status": "succeeded",
            "trigger": "schedule",
            **fields,
        }
    )


# -- triggering ------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_a_signed_trigger_queues_an_api_run_that_succeeds(make_job, api_client, memory_engines):
    job = make_job(name="add-numbers", kwargs={"x": 1, "y": 2})
    response = trigger("add-numbers", api_client, {"kwargs": {"x": 20, "y": 22}})
    assert response.status_code == 202, response.content
    run = JobRun.objects.get(job=job)
    assert response.json() == {
        "run": run.pk,
        "status": "queued",
        "job": "add-numbers",
        "status_url": f"/api/runs/{run.pk}",
    }
    assert finished(run.pk)
    run.refresh_from_db()
    assert (run.status, run.trigger, run.result, run.kwargs) == ("succeeded", "api", 42, {"x": 20, "y": 22})

    status = call("GET", f"/api/runs/{run.pk}", api_client)
    assert status.status_code == 200
    body = status.json()
    assert set(body) == {
        "run",
        "job",
        "status",
        "trigger",
        "attempt",
        "scheduled_for",
        "started_at",
        "finished_at",
        "duration_seconds",
        "result",
        "error",
        "progress",
    }
    assert {k: body[k] for k in ("run", "job", "status", "trigger", "attempt", "result", "error", "progress")} == {
        "run": run.pk,
        "job": "add-numbers",
        "status": "succeeded",
        "trigger": "api",
        "attempt": 1,
        "result": 42,
        "error": None,
        "progress": 1.0,
    }
    assert body["duration_seconds"] >= 0 and dt.datetime.fromisoformat(body["finished_at"]) == run.finished_at
    assert dt.datetime.fromisoformat(body["scheduled_for"]) == run.scheduled_for
    api_client.refresh_from_db()
    assert api_client.last_used_at is not None


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("body", [b"", b"{}", b"  \n"])
def test_without_kwargs_the_run_takes_the_jobs_own(make_job, api_client, memory_engines, body):
    job = make_job(kwargs={"x": 4, "y": 5})
    response = trigger(job.name, api_client, body)
    assert response.status_code == 202, response.content
    assert finished(response.json()["run"])
    assert JobRun.objects.get(job=job).result == 9


@pytest.mark.django_db
def test_an_unavailable_engine_still_queues_the_run_and_warns(make_job, api_client, taskhub_settings):
    # The real APScheduler adapter with no runapscheduler process: the run waits for it.
    taskhub_settings(ENGINES={"celery": MEMORY, "apscheduler": "tasks_app.engines.apscheduler.APSchedulerEngine"})
    job = make_job(engine="apscheduler")
    response = trigger(job.name, api_client)
    assert response.status_code == 202
    run = JobRun.objects.get(job=job)
    assert response.json()["run"] == run.pk and run.status == "queued" and run.trigger == "api"
    assert "runapscheduler" in response.json()["warning"]


# -- authentication: 401 and nothing runs ----------------------------------------------------
def _sent_without(header):
    def send(job, client):
        headers = signing.sign(client.key_id, client.plain, "POST", f"/api/jobs/{job.name}/trigger")
        del headers[header]
        return Client().post(f"/api/jobs/{job.name}/trigger", headers=headers)

    return send


REFUSED = {
    "no key": (_sent_without(signing.KEY_HEADER), "missing header X-Taskhub-Key"),
    "no timestamp": (_sent_without(signing.TIMESTAMP_HEADER), "missing header X-Taskhub-Timestamp"),
    "no nonce": (_sent_without(signing.NONCE_HEADER), "missing header X-Taskhub-Nonce"),
    "no signature": (_sent_without(signing.SIGNATURE_HEADER), "missing header X-Taskhub-Signature"),
    "unsigned": (lambda job, c: Client().post(f"/api/jobs/{job.name}/trigger"), "missing header X-Taskhub-Key, "),
    "wrong secret": (lambda job, c: trigger(job.name, c, secret="0" * 64), "bad signature"),
    "unknown key": (
        lambda job, c: call(
            "POST", f"/api/jobs/{job.name}/trigger", type("Other", (), {"key_id": "thk_nobody", "plain": c.plain})
        ),
        "unknown API key",
    ),
    "6 minutes old": (lambda job, c: trigger(job.name, c, timestamp=int(time.time()) - 360), "more than 5 minutes"),
    "6 minutes ahead": (lambda job, c: trigger(job.name, c, timestamp=int(time.time()) + 360), "more than 5 minutes"),
    "timestamp not seconds": (lambda job, c: trigger(job.name, c, timestamp="1e9"), "whole Unix seconds"),
    "short nonce": (lambda job, c: trigger(job.name, c, nonce="abc"), "8-64 characters"),
}


@pytest.mark.django_db
@pytest.mark.parametrize("case", REFUSED)
def test_requests_without_a_valid_signature_get_401_and_run_nothing(make_job, api_client, memory_engines, case):
    job = make_job()
    send, message = REFUSED[case]
    response = send(job, api_client)
    assert message in error_of(response, 401)
    assert response["WWW-Authenticate"] == "Taskhub-HMAC-SHA256"
    assert not JobRun.objects.exists() and not ApiNonce.objects.exists()


@pytest.mark.django_db
def test_a_body_changed_after_signing_is_refused(make_job, api_client, memory_engines):
    job = make_job()
    path = f"/api/jobs/{job.name}/trigger"
    headers = signing.sign(api_client.key_id, api_client.plain, "POST", path, b'{"kwargs": {"x": 1, "y": 2}}')
    response = Client().post(path, b'{"kwargs": {"x": 1, "y": 3}}', content_type="application/json", headers=headers)
    assert error_of(response, 401) == "bad signature"
    assert not JobRun.objects.exists()


@pytest.mark.django_db
def test_a_signature_for_another_path_or_method_is_refused(make_job, api_client, memory_engines):
    job, other = make_job(), make_job()
    headers = signing.sign(api_client.key_id, api_client.plain, "POST", f"/api/jobs/{other.name}/trigger")
    response = Client().generic("POST", f"/api/jobs/{job.name}/trigger", b"", headers=headers)
    assert error_of(response, 401) == "bad signature"
    run = make_run(job)
    headers = signing.sign(api_client.key_id, api_client.plain, "POST", f"/api/runs/{run.pk}")
    assert error_of(Client().get(f"/api/runs/{run.pk}", headers=headers), 401) == "bad signature"
    assert JobRun.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_replayed_request_is_refused(make_job, api_client, memory_engines):
    job = make_job()
    path = f"/api/jobs/{job.name}/trigger"
    headers = signing.sign(api_client.key_id, api_client.plain, "POST", path)
    assert Client().generic("POST", path, b"", headers=headers).status_code == 202
    replay = Client().generic("POST", path, b"", headers=headers)
    assert error_of(replay, 401) == "nonce already used: sign every request with a new one"
    assert JobRun.objects.filter(job=job).count() == 1
    # A nonce is per key: another client may happen to use the same one.
    other, secret = ApiClient.objects.create_client(name="other", all_jobs=True)
    again = signing.sign(other.key_id, secret, "POST", path, nonce=headers[signing.NONCE_HEADER])
    assert Client().generic("POST", path, b"", headers=again).status_code == 202


@pytest.mark.django_db
def test_nonces_are_kept_as_long_as_a_replay_could_pass_and_then_purged(make_job, api_client, memory_engines):
    job = make_job()
    now = timezone.now()
    ApiNonce.objects.create(client=api_client, nonce="old-enough-to-go", seen_at=now - dt.timedelta(minutes=11))
    ApiNonce.objects.create(client=api_client, nonce="still-replayable", seen_at=now - dt.timedelta(minutes=9))
    assert trigger(job.name, api_client).status_code == 202  # any verified request purges
    left = set(ApiNonce.objects.values_list("nonce", flat=True))
    assert "old-enough-to-go" not in left and "still-replayable" in left and len(left) == 2
    # Signed 5 minutes ahead of the clock and seen 9 minutes ago, its timestamp is still in the window now:
    replay = trigger(job.name, api_client, nonce="still-replayable", timestamp=int(time.time()) - 4 * 60)
    assert error_of(replay, 401).startswith("nonce already used")


@pytest.mark.django_db
def test_a_disabled_client_is_refused(make_job, api_client, memory_engines):
    job = make_job()
    ApiClient.objects.filter(pk=api_client.pk).update(enabled=False)
    assert error_of(trigger(job.name, api_client), 401) == "this API key is disabled"
    assert error_of(call("GET", f"/api/runs/{make_run(job).pk}", api_client), 401) == "this API key is disabled"
    assert JobRun.objects.count() == 1


@pytest.mark.django_db
def test_csrf_does_not_apply_to_signed_requests(make_job, api_client, memory_engines):
    job = make_job()
    response = trigger(job.name, api_client, http=Client(enforce_csrf_checks=True))
    assert response.status_code == 202


# -- the other refusals ----------------------------------------------------------------------
@pytest.mark.django_db
def test_unknown_or_not_allowed_job_404_paused_409(make_job, api_client, memory_engines):
    allowed, forbidden, paused = (
        make_job(name="allowed"),
        make_job(name="forbidden"),
        make_job(name="paused", enabled=False),
    )
    assert error_of(trigger("nope", api_client), 404) == "no job named 'nope'"
    assert error_of(trigger("paused", api_client), 409) == PAUSED_409
    restrict(api_client, [allowed, paused])
    assert error_of(trigger("forbidden", api_client), 404) == "no job named 'forbidden'"
    assert error_of(trigger("paused", api_client), 409) == PAUSED_409
    assert not JobRun.objects.exists()
    assert trigger("allowed", api_client).status_code == 202
    assert list(JobRun.objects.values_list("job__name", flat=True)) == ["allowed"]
    assert forbidden.enabled


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body, status, error, fields",
    [
        ({"kwargs": {"x": "1", "y": 2}}, 400, "x: must be an integer", {"x": "must be an integer"}),
        ({"kwargs": {"x": 1}}, 400, "y: missing", {"y": "missing"}),
        ({"kwargs": {"x": 1, "y": 2, "z": 3}}, 400, "z: unknown parameter", {"z": "unknown parameter"}),
        (
            {"kwargs": {"x": 1.5, "y": "2", "context": 1}},
            400,
            "context: is supplied by taskhub",
            {"context": "is supplied by taskhub, not by kwargs", "x": "must be an integer", "y": "must be an integer"},
        ),
        ({"kwargs": [1, 2]}, 400, "kwargs must be a JSON object", None),
        ({"kwargs": None}, 400, "kwargs must be a JSON object", None),
        ([1, 2], 400, "the body must be a JSON object", None),
        ({"kwarg": {"x": 1}}, 400, "unknown field 'kwarg'", None),
        (b"x=1&y=2", 400, "the body must be JSON", None),
        (b"\xff\xfe", 400, "the body must be JSON", None),
        ({"kwargs": {"x": 1, "y": 2, "z": "9" * 70000}}, 400, "kwargs", None),  # the kwargs as a whole: no field
    ],
)
def test_bad_kwargs_or_body_get_400_naming_the_problem(
    make_job, api_client, memory_engines, body, status, error, fields
):
    job = make_job()
    response = trigger(job.name, api_client, body)
    message = error_of(response, status)
    assert message.startswith(error), message
    if fields is None:
        assert "fields" not in response.json()
    else:
        assert response.json()["fields"] == fields
        assert message == "; ".join(f"{k}: {v}" for k, v in fields.items())
    assert not JobRun.objects.exists()


@pytest.mark.django_db
@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=100)
def test_a_body_over_djangos_upload_limit_gets_413(make_job, api_client, memory_engines):
    job = make_job()
    assert error_of(trigger(job.name, api_client, {"kwargs": {"x": 1, "y": 2, "pad": "." * 100}}), 413) == (
        "request body too large"
    )
    assert not JobRun.objects.exists()


@pytest.mark.django_db
def test_kwargs_that_do_not_fit_get_the_whole_documented_answer(make_job, api_client, memory_engines):
    job = make_job()
    response = trigger(job.name, api_client, {"kwargs": {"x": 1.5, "y": 2}})
    assert response.status_code == 400
    assert response.content == b'{"error": "x: must be an integer", "fields": {"x": "must be an integer"}}'
    assert not JobRun.objects.exists()


@pytest.mark.django_db
def test_only_the_right_method_and_known_paths(make_job, api_client, memory_engines):
    job = make_job()
    response = call("GET", f"/api/jobs/{job.name}/trigger", api_client)
    assert error_of(response, 405) == "method GET not allowed: use POST" and response["Allow"] == "POST"
    run = make_run(job)
    response = call("POST", f"/api/runs/{run.pk}", api_client)
    assert error_of(response, 405) == "method POST not allowed: use GET" and response["Allow"] == "GET"
    assert error_of(call("POST", f"/api/jobs/{job.name}/run", api_client), 404).startswith("no API endpoint")
    assert JobRun.objects.count() == 1


# -- run status ------------------------------------------------------------------------------
@pytest.mark.django_db
def test_run_status_404_and_the_last_error_line(make_job, api_client):
    mine, theirs = make_job(name="mine"), make_job(name="theirs")
    failed = make_run(
        mine,
        status="failed",
        attempt=3,
        progress=0.5,
        error='Traceback (most recent call last):\n  File "x.py", line 1\nValueError: boom\n',
    )
    other = make_run(theirs)
    body = call("GET", f"/api/runs/{failed.pk}", api_client).json()
    assert (body["status"], body["attempt"], body["error"], body["progress"], body["result"]) == (
        "failed",
        3,
        "ValueError: boom",
        0.5,
        None,
    )
    assert body["started_at"] is None and body["trigger"] == "schedule"
    assert error_of(call("GET", "/api/runs/999999", api_client), 404) == "no run 999999"
    restrict(api_client, [mine])
    assert call("GET", f"/api/runs/{failed.pk}", api_client).status_code == 200
    assert error_of(call("GET", f"/api/runs/{other.pk}", api_client), 404) == f"no run {other.pk}"  # no job named


# -- secrets: stored encrypted, shown once, rotated ------------------------------------------
def _raw_row(client) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM tasks_app_apiclient WHERE id = %s", [client.pk])
        return " ".join(map(str, cursor.fetchone()))


def shown_secrets(response) -> list[str]:
    return re.findall(r'<code class="api-secret">([^<]*)</code>', response.text)


def stored(response) -> str:
    """Everything the response leaves in the browser, the session or the message store, as text."""
    request = response.wsgi_request
    texts = [str(m) for m in get_messages(request)] + [str(dict(request.session.items()))]
    for morsel in response.cookies.values():
        texts.append(morsel.OutputString())
        if morsel.key == CookieStorage.cookie_name:  # signed and compressed: decode before looking
            texts += [str(m) for m in CookieStorage(request)._decode(morsel.value) or []]
    return "\n".join(texts)


def assert_shown_once_and_kept_nowhere(response, secret, admin_client):
    assert response.status_code == 200 and response.text.count(secret) == 1
    assert "no-store" in response["Cache-Control"]
    assert secret not in stored(response)
    assert secret not in admin_client.get(CLIENTS).text  # nor on the next page


@pytest.mark.django_db
def test_the_admin_shows_a_new_secret_once_and_stores_it_encrypted(admin_client, make_job, memory_engines):
    job = make_job()
    response = admin_client.post(
        reverse("admin:tasks_app_apiclient_add"), {"name": "deploy-bot", "enabled": "on", "allowed_jobs": [job.pk]}
    )
    client = ApiClient.objects.get(name="deploy-bot")
    [secret] = shown_secrets(response)
    assert len(secret) == 64 and client.key_id in response.text and "shown only on this page" in response.text
    assert_shown_once_and_kept_nowhere(response, secret, admin_client)
    assert secret not in _raw_row(client) and client.secret_encrypted.startswith("gAAAA")  # a Fernet token
    client.plain = secret
    assert trigger(job.name, client).status_code == 202  # the shown secret is the one that verifies
    assert list(client.allowed_jobs.all()) == [job] and not client.all_jobs

    change = admin_client.get(reverse("admin:tasks_app_apiclient_change", args=[client.pk])).text
    listing = admin_client.get(CLIENTS).text
    for page in (change, listing):
        assert client.key_id in page and secret not in page
    assert "Last used" in listing and "deploy-bot" in listing and "1 job" in listing


@pytest.mark.django_db
def test_the_add_page_asks_only_what_a_person_chooses(admin_client):
    page = admin_client.get(reverse("admin:tasks_app_apiclient_add")).text
    assert 'name="name"' in page and 'name="allowed_jobs"' in page and 'name="all_jobs"' in page
    assert "secret" not in page.lower() and "Key id" not in page


@pytest.mark.django_db
def test_a_client_has_all_jobs_or_some_never_both_and_none_is_none(admin_client, make_job):
    job = make_job()
    add = reverse("admin:tasks_app_apiclient_add")
    response = admin_client.post(add, {"name": "both", "enabled": "on", "all_jobs": "on", "allowed_jobs": [job.pk]})
    assert "Choose either all jobs or some jobs, not both." in response.text
    assert not ApiClient.objects.filter(name="both").exists()
    admin_client.post(add, {"name": "all", "enabled": "on", "all_jobs": "on"})
    admin_client.post(add, {"name": "none", "enabled": "on"})
    assert dict(ApiClient.objects.values_list("name", "all_jobs")) == {"all": True, "none": False}
    listing = admin_client.get(CLIENTS).text
    assert "all jobs" in listing and ">none<" in listing


@pytest.mark.django_db
def test_rotating_shows_the_new_secret_once_and_the_old_one_stops_working(
    admin_client, make_job, api_client, memory_engines
):
    job = make_job()
    other, _ = ApiClient.objects.create_client(name="other")
    before = api_client.secret_encrypted
    response = admin_client.post(CLIENTS, {"action": "rotate_secret", "_selected_action": [api_client.pk, other.pk]})
    new, other_new = shown_secrets(response)  # ordered by name: "ci", "other"
    for secret in (new, other_new):
        assert_shown_once_and_kept_nowhere(response, secret, admin_client)
    api_client.refresh_from_db()
    assert new != api_client.plain and api_client.secret_encrypted != before and new not in _raw_row(api_client)
    assert error_of(trigger(job.name, api_client), 401) == "bad signature"
    assert trigger(job.name, api_client, secret=new).status_code == 202
    assert new not in admin_client.get(reverse("admin:tasks_app_apiclient_change", args=[api_client.pk])).text
    history = admin_client.get(reverse("admin:tasks_app_apiclient_history", args=[api_client.pk])).text
    assert "Rotated the secret." in history and new not in history


@pytest.mark.django_db
def test_secrets_survive_a_secret_key_rotation_through_the_fallbacks(make_job, api_client, memory_engines):
    job = make_job()
    with override_settings(SECRET_KEY="a-new-secret-key", SECRET_KEY_FALLBACKS=[settings.SECRET_KEY]):
        assert trigger(job.name, api_client).status_code == 202
    with override_settings(SECRET_KEY="a-new-secret-key", SECRET_KEY_FALLBACKS=[]):
        assert "its secret is rotated" in error_of(trigger(job.name, api_client), 401)
        api_client.plain = api_client.rotate_secret()
        assert trigger(job.name, api_client).status_code == 202


# -- the README snippets, run as a user would ------------------------------------------------
def readme_block(after: str, language: str) -> str:
    """The first fenced ``language`` block after the line that starts with ``after`` in README.md."""
    text = (ROOT / "README.md").read_text()
    rest = text[text.index(after) :]
    start = rest.index(f"```{language}\n") + len(language) + 4
    return rest[start : rest.index("```", start)]


CURL_BLOCK = readme_block("**curl + openssl**", "sh")
CURL_FUNCTION = CURL_BLOCK[: CURL_BLOCK.index("\n}\n") + 3]
CURL_TRIGGER, CURL_STATUS = (line for line in CURL_BLOCK.splitlines() if line.startswith("taskhub_api "))
PYTHON_SNIPPET = readme_block("**Python**", "python")


@pytest.fixture
def snippet_env(live_server, api_client, memory_engines):
    # The server thread and the engine's threads write at once: the in-memory SQLite fallback locks up.
    require(POSTGRES_URL, "Postgres")
    call_command("create_demo_job", stdout=io.StringIO())  # as a fresh bin/run does
    return {
        **os.environ,
        "TASKHUB_URL": live_server.url,
        "TASKHUB_KEY_ID": api_client.key_id,
        "TASKHUB_SECRET": api_client.plain,
    }


def _sh(shell, script, env) -> tuple[dict, str]:
    """The JSON answer (stdout) and the HTTP status line (stderr) of a README shell snippet."""
    done = subprocess.run([shell, "-euc", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("shell", ["bash", "sh"])
def test_the_readme_curl_and_openssl_snippet_works_as_written(snippet_env, shell):
    assert "demo-add-numbers" in CURL_TRIGGER
    queued, status_line = _sh(shell, CURL_FUNCTION + CURL_TRIGGER, snippet_env)
    assert (queued["status"], queued["job"], status_line) == ("queued", "demo-add-numbers", "HTTP 202\n")
    assert finished(queued["run"])
    status, status_line = _sh(
        shell, CURL_FUNCTION + CURL_STATUS.replace("/api/runs/42", queued["status_url"]), snippet_env
    )
    assert (status["status"], status["result"], status["trigger"], status_line) == ("succeeded", 3, "api", "HTTP 200\n")


@pytest.mark.django_db(transaction=True)
def test_the_readme_curl_snippet_shows_the_status_of_a_refusal(snippet_env):
    answer, status_line = _sh("bash", CURL_FUNCTION + "taskhub_api GET /api/runs/999999", snippet_env)
    assert (answer, status_line) == ({"error": "no run 999999"}, "HTTP 404\n")


@pytest.mark.django_db(transaction=True)
def test_the_readme_python_snippet_works_as_written(snippet_env):
    done = subprocess.run(
        [sys.executable, "-c", PYTHON_SNIPPET], env=snippet_env, capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "succeeded 3\n", "")
    assert JobRun.objects.get().trigger == "api"


# -- signing, as pure functions --------------------------------------------------------------
def test_the_signature_is_hmac_sha256_of_the_documented_string():
    headers = signing.sign(
        "thk_k", "s3cret", "post", "/api/jobs/a/trigger", b"{}", timestamp=1700000000, nonce="n0nce-n0nce"
    )
    message = f"1700000000\nPOST\n/api/jobs/a/trigger\n{hashlib.sha256(b'{}').hexdigest()}\nn0nce-n0nce"
    assert headers == {
        "X-Taskhub-Key": "thk_k",
        "X-Taskhub-Timestamp": "1700000000",
        "X-Taskhub-Nonce": "n0nce-n0nce",
        "X-Taskhub-Signature": hmac.new(b"s3cret", message.encode(), hashlib.sha256).hexdigest(),
    }
    signing.check_signature("s3cret", headers, "POST", "/api/jobs/a/trigger", b"{}")
    signing.check_fresh("1700000000", now=1700000000 + 300)
    with pytest.raises(signing.SignatureError):
        signing.check_fresh("1700000000", now=1700000000 - 301)
