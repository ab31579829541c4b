"""/healthz and manage.py healthcheck: 200 only when the required checks pass, always fast."""

import json
import socket
import time

import pytest
from django.test import override_settings

from tests.brokers import amqp_problem
from tests.helpers import clean_env, manage, python
from tests.processes import process_env, processes, wait_for  # noqa: F401  (fixture)
from tests.services import AMQP_URL, POSTGRES_SERVER_URL, REDIS_URL, require


@pytest.fixture
def silent_server():
    """A TCP port that accepts connections and never answers: a hung dependency."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield f"127.0.0.1:{server.getsockname()[1]}"
    server.close()


def taskhub_settings(**overrides):
    from django.conf import settings

    return override_settings(TASKHUB={**settings.TASKHUB, **overrides})


@pytest.mark.django_db
def test_healthy_database_answers_200_with_one_entry_per_dependency(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["healthy"] is True
    assert body["checks"]["database"]["ok"] is True and body["checks"]["database"]["required"] is True
    assert "broker" in body["checks"]
    assert response["Cache-Control"].startswith("max-age=0")


@pytest.mark.django_db
def test_a_hung_required_broker_gives_503_within_a_second(client, silent_server):
    with (
        override_settings(CELERY_BROKER_URL=f"redis://{silent_server}/0"),
        taskhub_settings(HEALTH_REQUIRED=["database", "broker"]),
    ):
        started = time.monotonic()
        response = client.get("/healthz")
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    broker = response.json()["checks"]["broker"]
    assert broker["ok"] is False and broker["required"] is True
    assert elapsed < 1.0


@pytest.mark.django_db
def test_an_optional_check_failing_does_not_make_it_unhealthy(client):
    with override_settings(CELERY_BROKER_URL="redis://127.0.0.1:1/0"):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["checks"]["broker"]["ok"] is False


@pytest.mark.django_db
def test_redis_broker_is_healthy_when_redis_answers(client):
    require(REDIS_URL, "Redis")
    with override_settings(CELERY_BROKER_URL=REDIS_URL), taskhub_settings(HEALTH_REQUIRED=["broker"]):
        response = client.get("/healthz")
    assert response.status_code == 200 and response.json()["checks"]["broker"]["ok"] is True


@pytest.mark.django_db
def test_a_rabbitmq_broker_is_healthy_when_it_answers_and_refused_with_one_line_on_a_closed_port(client):
    require(AMQP_URL, "RabbitMQ", amqp_problem())
    closed = AMQP_URL.replace(":5672/", ":1/")
    for url, ok in ((AMQP_URL, True), (closed, False)):
        with override_settings(CELERY_BROKER_URL=url), taskhub_settings(HEALTH_REQUIRED=["broker"]):
            response = client.get("/healthz")
        broker = response.json()["checks"]["broker"]
        assert (response.status_code, broker["ok"]) == ((200, True) if ok else (503, False)), broker
        result = manage("healthcheck", "--check", "broker", env=clean_env(SECRET_KEY="k", CELERY_BROKER_URL=url))
        [row] = [line for line in result.stdout.splitlines() if line.startswith("broker")]
        assert (result.returncode, row.split()[1]) == ((0, "ok") if ok else (1, "FAIL")), result.stdout
        assert (
            ("amqp://127.0.0.1:5672" in row)
            if ok
            else ("Connection refused" in row and "Connection refused" in broker["error"])
        )
        assert "guest" not in result.stdout + json.dumps(broker)  # the password is never shown


@pytest.mark.django_db
def test_an_unknown_required_check_is_unhealthy(client):
    with taskhub_settings(HEALTH_REQUIRED=["database", "flux-capacitor"]):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["flux-capacitor"]["error"] == "no such health check"


@pytest.mark.django_db(transaction=True)
def test_the_workers_check_names_the_worker_that_answers(client, processes):
    from celery.utils.nodenames import default_nodename

    processes.worker(concurrency=1)
    workers = wait_for(lambda: (check := client.get("/healthz").json()["checks"]["workers"])["ok"] and check)
    assert workers, processes.output(processes.started[0])
    assert workers["workers"] == [default_nodename(None)] and workers["required"] is False
    result = manage("healthcheck", "--check", "workers", env=process_env())
    assert result.returncode == 0, result.stderr
    assert default_nodename(None) in result.stdout


@pytest.mark.django_db
def test_with_no_worker_up_the_workers_check_says_so_before_the_deadline(client):
    require(REDIS_URL, "Redis")
    with override_settings(CELERY_BROKER_URL=REDIS_URL):
        started = time.monotonic()
        workers = client.get("/healthz").json()["checks"]["workers"]
        elapsed = time.monotonic() - started
    assert workers["ok"] is False
    assert workers["error"] == "no worker answered a ping within 0.4 s"  # its own answer, not the deadline's
    assert elapsed < 1.0


@pytest.mark.django_db
@pytest.mark.parametrize("required, status", [(["database"], 200), (["database", "workers"], 503)])
def test_with_no_worker_up_healthz_fails_only_when_workers_are_required(client, required, status):
    require(REDIS_URL, "Redis")
    with override_settings(CELERY_BROKER_URL=REDIS_URL), taskhub_settings(HEALTH_REQUIRED=required):
        response = client.get("/healthz")
    assert response.status_code == status
    workers = response.json()["checks"]["workers"]
    assert workers["ok"] is False and workers["required"] is ("workers" in required)


@pytest.mark.django_db
def test_a_hung_broker_fails_the_workers_check_on_its_own_socket_timeout(client, silent_server):
    with override_settings(CELERY_BROKER_URL=f"redis://{silent_server}/0"):
        workers = client.get("/healthz").json()["checks"]["workers"]
    assert workers["ok"] is False
    assert "Timeout reading from socket" in workers["error"]  # the ping gave up: no pool thread left hanging


def test_healthz_refuses_post(client):
    assert client.post("/healthz").status_code == 405


@pytest.mark.parametrize("where", ["refused", "silent"])
def test_a_database_url_that_points_nowhere_gives_503_within_a_second(where, silent_server):
    address = "127.0.0.1:1" if where == "refused" else silent_server
    code = (
        "import json, time\nfrom django.test import Client\n"
        "t = time.monotonic(); r = Client().get('/healthz')\n"
        "print(json.dumps({'status': r.status_code, 'seconds': time.monotonic() - t, 'body': r.json()}))"
    )
    env = clean_env(SECRET_KEY="k", ALLOWED_HOSTS="testserver", DATABASE_URL=f"postgres://u@{address}/x")
    result = python(code, env=env)
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["status"] == 503 and answer["body"]["checks"]["database"]["ok"] is False
    assert answer["seconds"] < 1.0


def test_healthcheck_command_exits_0_when_healthy_and_prints_a_table():
    require(POSTGRES_SERVER_URL, "Postgres")
    result = manage("healthcheck", env=clean_env(SECRET_KEY="k", DATABASE_URL=POSTGRES_SERVER_URL))
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split()[:4] == ["CHECK", "STATUS", "REQUIRED", "MS"]
    assert rows[0].split()[:3] == ["database", "ok", "yes"]


def test_healthcheck_command_exits_non_zero_with_one_line_when_unhealthy():
    result = manage("healthcheck", "--json", env=clean_env(SECRET_KEY="k", DATABASE_URL="postgres://u@127.0.0.1:1/x"))
    assert result.returncode == 1
    assert json.loads(result.stdout)["healthy"] is False
    assert result.stderr.strip().splitlines() == ["CommandError: unhealthy: database"]


def test_healthcheck_command_can_check_only_the_broker():
    env = clean_env(SECRET_KEY="k", CELERY_BROKER_URL="redis://127.0.0.1:1/0")
    result = manage("healthcheck", "--check", "broker", env=env)
    assert result.returncode == 1 and "broker" in result.stdout and "database" not in result.stdout


# -- the broker's address: scheme, host and port only ----------------------------------------
SECRET = "s3cret"


@pytest.mark.parametrize(
    "url, shown",
    [
        (f"redis://:{SECRET}@127.0.0.1:6379/0", "redis://127.0.0.1:6379"),
        (f"redis://127.0.0.1:6379/0?password={SECRET}", "redis://127.0.0.1:6379"),
        (f"rediss://user:{SECRET}@Redis.Example:6380/{SECRET}?ssl_cert_reqs=none", "rediss://redis.example:6380"),
        (f"redis://[::1]:6379/0?password={SECRET}", "redis://[::1]:6379"),
        (f"redis://u:{SECRET}@[2001:db8::1]/2", "redis://[2001:db8::1]"),
        (f"amqp://guest:{SECRET}@rabbit:5672/{SECRET}-vhost?heartbeat=30", "amqp://rabbit:5672"),
        (f"pyamqp://guest:{SECRET}@rabbit//", "pyamqp://rabbit"),
        (
            f"sentinel://:{SECRET}@10.0.0.1:26379;sentinel://:{SECRET}@10.0.0.2:26379/0?password={SECRET}",
            "sentinel://10.0.0.1:26379;sentinel://10.0.0.2:26379",
        ),
        (f"redis+socket:///var/run/{SECRET}.sock?password={SECRET}", "redis+socket://"),
        (f"redis://host:notaport/{SECRET}", "redis://host"),
        (f"not a url {SECRET}", "(unreadable)"),
    ],
)
def test_the_broker_is_shown_by_scheme_host_and_port_only(url, shown):
    from tasks_app.monitoring.health import public_address

    assert public_address(url) == shown


@pytest.fixture
def broker_with_secrets():
    """The test Redis, reached with a password (any is accepted: no ACL password is set) and a secret query."""
    require(REDIS_URL, "Redis")
    from urllib.parse import urlsplit

    parts = urlsplit(REDIS_URL)
    return f"redis://default:{SECRET}@{parts.hostname}:{parts.port}{parts.path}?client_name={SECRET}2"


@pytest.mark.django_db
def test_healthz_and_the_healthcheck_command_name_no_secret_of_the_broker_url(client, broker_with_secrets):
    with override_settings(CELERY_BROKER_URL=broker_with_secrets):
        body = client.get("/healthz").content.decode()
    assert '"url": "redis://' in body and SECRET not in body
    env = clean_env(SECRET_KEY="k", CELERY_BROKER_URL=broker_with_secrets)
    for output in (manage("healthcheck", "--check", "broker", env=env), manage("healthcheck", "--json", env=env)):
        assert "redis://127.0.0.1:" in output.stdout and SECRET not in output.stdout + output.stderr


@pytest.mark.django_db
def test_a_failing_broker_names_no_secret_either(client):
    for url in (
        f"redis://:{SECRET}@127.0.0.1:1/0?password={SECRET}",
        f"redis://u:{SECRET}@127.0.0.1:notaport/0",
        f"amqp://u:{SECRET}@127.0.0.1:1/{SECRET}?heartbeat=x",
    ):
        with override_settings(CELERY_BROKER_URL=url):
            body = client.get("/healthz").json()
        assert body["checks"]["broker"]["ok"] is False and SECRET not in json.dumps(body), body


@pytest.mark.django_db
def test_the_dashboard_names_no_secret_of_the_broker_url(admin_client, broker_with_secrets):
    with override_settings(CELERY_BROKER_URL=broker_with_secrets):
        page = admin_client.get("/admin/").content.decode()
    assert "redis://127.0.0.1:" in page and SECRET not in page


def test_a_check_error_that_quotes_the_broker_url_is_scrubbed():
    from tasks_app.monitoring import health

    url = f"amqp://guest:{SECRET}@rabbit:5672/vhost?auth_token={SECRET}2&heartbeat=30"

    def fails():
        raise ConnectionError(f"cannot reach {url} (user guest, password {SECRET})")

    with override_settings(CELERY_BROKER_URL=url):
        error = health.submit(fails).result()["error"]
    assert SECRET not in error and error.startswith("ConnectionError: cannot reach amqp://") and "heartbeat=30" in error


@pytest.mark.django_db
@pytest.mark.parametrize("url", [f"redis://:{SECRET}@[::1:6379/0", f"redis://u:{SECRET}@[zz]:1/0"])
def test_a_malformed_broker_url_is_reported_without_breaking_or_leaking(client, url):
    from tasks_app.monitoring.health import public_address

    assert public_address(url) == "(unreadable)"
    with override_settings(CELERY_BROKER_URL=url):
        response = client.get("/healthz")
    assert response.status_code in (200, 503) and SECRET not in response.content.decode()
    assert response.json()["checks"]["broker"]["ok"] is False
