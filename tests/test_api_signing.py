"""The signed path is the request target as the client sent it (percent-escapes, case, a bare "?").

gunicorn passes the request line's target on as ``RAW_URI`` (uWSGI and mod_wsgi as ``REQUEST_URI``);
Django's test client and ``runserver`` do not, and there the canonical form is what is signed.
"""

import http.client
import re
import socket
import string
from urllib.parse import unquote

import pytest
from django.conf import settings
from django.db import transaction
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tasks_app import signing
from tasks_app.models import JobRun
from tasks_app.models.api_clients import ApiClient
from tests.helpers import wait_for
from tests.processes import processes  # noqa: F401  (fixture)
from tests.test_api import error_of

AS_SENT = [
    "/api/jobs/%61dd/trigger",  # an escape that needs none
    "/api/jobs/add/trigger?",  # a bare "?"
    "/api/jobs/add/trigger?note=caf%c3%a9&x",  # lower-case hex in the query
    "/api/jobs/%61%64%64/trigger?",
]


@pytest.fixture
def signer(db):
    client, secret = ApiClient.objects.create_client(name="signer", all_jobs=True)
    client.plain = secret
    return client


def send(signer, sent, signed=None, raw=True, http=None):
    """POST ``sent`` signed over ``signed`` (default: ``sent``), passing the raw target on as gunicorn does."""
    headers = signing.sign(signer.key_id, signer.plain, "POST", signed or sent)
    extra = {"RAW_URI": sent} if raw else {}
    return (http or Client()).generic("POST", sent, b"", headers=headers, **extra)


@pytest.mark.django_db
@pytest.mark.parametrize("sent", AS_SENT)
def test_a_client_signs_the_target_exactly_as_it_sends_it(make_job, signer, memory_engines, sent):
    make_job(name="add")
    response = send(signer, sent)
    assert response.status_code == 202, response.content
    assert JobRun.objects.get().job.name == "add"


@pytest.mark.django_db
def test_lower_case_escapes_in_the_path_are_checked_as_sent(signer, memory_engines):
    # Job names are ASCII: the signature passes and the answer is about the job, not the signature.
    assert error_of(send(signer, "/api/jobs/caf%c3%a9/trigger"), 404) == "no job named 'café'"
    assert error_of(send(signer, "/api/jobs/caf%C3%A9/trigger"), 404) == "no job named 'café'"


@pytest.mark.django_db
def test_the_absolute_form_of_a_request_target_signs_its_path(make_job, signer, memory_engines):
    make_job(name="add")
    path = "/api/jobs/%61dd/trigger?"
    headers = signing.sign(signer.key_id, signer.plain, "POST", path)
    response = Client().generic("POST", path, b"", headers=headers, RAW_URI=f"http://testserver{path}")
    assert response.status_code == 202, response.content


@pytest.mark.django_db
@pytest.mark.parametrize(
    "signed, sent",
    [
        ("/api/jobs/%61dd/trigger", "/api/jobs/%62dd/trigger"),  # another job, escaped
        ("/api/jobs/add/trigger?x=1", "/api/jobs/add/trigger?x=2"),
        ("/api/jobs/add/trigger?x=%c3%a9", "/api/jobs/add/trigger?x=%c3%a8"),
        ("/api/jobs/add/trigger", "/api/jobs/add/trigger?"),  # the exact target, not an equivalent one
        ("/api/jobs/add/trigger", "/api/jobs/%61dd/trigger"),
    ],
)
def test_a_target_changed_after_signing_is_refused(make_job, signer, memory_engines, signed, sent):
    make_job(name="add"), make_job(name="bdd")
    assert error_of(send(signer, sent, signed=signed), 401) == "bad signature"
    assert not JobRun.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "sent, canonical",
    [
        ("/api/jobs/%61dd/trigger", "/api/jobs/add/trigger"),
        ("/api/jobs/add/trigger?", "/api/jobs/add/trigger"),
        ("/api/jobs/add/trigger?note=caf%c3%a9", "/api/jobs/add/trigger?note=caf%c3%a9"),  # the query as received
    ],
)
def test_without_the_raw_target_the_canonical_form_is_signed(make_job, signer, memory_engines, sent, canonical):
    make_job(name="add")
    assert send(signer, sent, signed=canonical, raw=False).status_code == 202
    if sent != canonical:
        assert error_of(send(signer, sent, raw=False), 401) == "bad signature"


@pytest.mark.parametrize(
    "path, query, canonical",
    [
        ("/api/jobs/add/trigger", "", "/api/jobs/add/trigger"),
        ("/api/jobs/café/trigger", "", "/api/jobs/caf%C3%A9/trigger"),
        ("/a b/%/~-._", "", "/a%20b/%25/~-._"),
        ("/a:b@c!$&'()*+,;=", "x=%c3%a9&y", "/a:b@c!$&'()*+,;=?x=%c3%a9&y"),
        ("/q?/#", "", "/q%3F/%23"),
    ],
)
def test_the_canonical_form(path, query, canonical):
    assert signing.canonical_target(path, query) == canonical


@given(st.text(st.characters(exclude_categories=["Cs"]), max_size=40))
def test_the_canonical_form_decodes_back_and_escapes_all_it_must(path):
    canonical = signing.canonical_target(path)
    assert unquote(canonical, errors="strict") == path
    assert set(canonical) <= set(signing.PATH_SAFE + "%" + string.ascii_letters + string.digits)
    assert not re.search(r"%[0-9A-F]?[a-f]", canonical)  # upper-case hex only


def _escaped(name, choices):
    """``name`` with the characters ``choices`` picks percent-escaped, in upper- or lower-case hex."""
    return "".join(f"%{ord(c):02{case}}" if case else c for c, case in zip(name, choices))


@pytest.mark.django_db
def test_any_escaping_of_the_path_verifies_as_sent_and_no_other_does(make_job, signer, memory_engines):
    job = make_job(name="add.numbers-2")

    @hypothesis_settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        choices=st.lists(st.sampled_from([None, "X", "x"]), min_size=len(job.name), max_size=len(job.name)),
        query=st.sampled_from(["", "?", "?a=%c3%a9", "?a=b&c"]),
        other=st.integers(0, 3),
    )
    def verifies_as_sent(choices, query, other):
        sent = f"/api/jobs/{_escaped(job.name, choices)}/trigger{query}"
        with transaction.atomic():
            assert send(signer, sent).status_code == 202, sent
            transaction.set_rollback(True)
        variants = {
            f"/api/jobs/{job.name}/trigger{query}",
            sent.lower(),
            sent.upper().replace("/API/JOBS", "/api/jobs"),
            f"/api/jobs/{_escaped(job.name, choices[other:] + choices[:other])}/trigger{query}",
        } - {sent}
        for signed in variants:  # an equivalent target signed is still not the one sent
            assert error_of(send(signer, sent, signed=signed), 401) == "bad signature"

    verifies_as_sent()


def _post(host, port, sent, headers):
    connection = http.client.HTTPConnection(host, port, timeout=10)
    connection.putrequest("POST", sent, skip_accept_encoding=True)  # the target goes out byte for byte
    for name, value in {**headers, "Content-Length": "0"}.items():
        connection.putheader(name, value)
    connection.endheaders()
    response = connection.getresponse()
    return response.status, response.read()


@pytest.mark.django_db(transaction=True)
def test_under_runserver_the_canonical_form_is_signed(live_server, make_job, memory_engines):
    # runserver's handler (wsgiref) passes no raw target on: what it can check is the canonical form.
    make_job(name="add")
    client, secret = ApiClient.objects.create_client(name="runserver", all_jobs=True)
    host, port = live_server.thread.host, live_server.thread.port
    for sent, canonical in [
        ("/api/jobs/%61dd/trigger", "/api/jobs/add/trigger"),
        ("/api/jobs/add/trigger?", "/api/jobs/add/trigger"),
        ("/api/jobs/caf%c3%a9/trigger", "/api/jobs/caf%C3%A9/trigger"),
    ]:
        assert _post(host, port, sent, signing.sign(client.key_id, secret, "POST", canonical))[0] in (202, 404)
        assert _post(host, port, sent, signing.sign(client.key_id, secret, "POST", sent))[0] == 401


# -- under gunicorn, with the project's gunicorn.conf.py --------------------------------------
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.django_db(transaction=True)
def test_under_gunicorn_the_target_is_signed_as_sent(processes, make_job):
    make_job(name="add")
    client, secret = ApiClient.objects.create_client(name="gunicorn", all_jobs=True)
    port = _free_port()
    web = processes.start(
        "web",
        "-m",
        "gunicorn",
        "taskhub.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
        ALLOWED_HOSTS="127.0.0.1",
        SECRET_KEY=settings.SECRET_KEY,
    )  # it decrypts the client's secret

    def post(sent, signed):
        return _post("127.0.0.1", port, sent, signing.sign(client.key_id, secret, "POST", signed))

    def up():
        try:
            return post("/api/jobs/add/trigger", "/api/jobs/add/trigger")[0] == 202
        except OSError:
            return False

    assert wait_for(up, timeout=30), processes.output(web)
    for sent in [*AS_SENT, "/api/jobs/caf%c3%a9/trigger"]:
        status, body = post(sent, sent)
        assert status in (202, 404) and b"signature" not in body, (sent, status, body)
    assert post("/api/jobs/%62dd/trigger", "/api/jobs/%61dd/trigger")[0] == 401
    assert post("/api/jobs/add/trigger?", "/api/jobs/add/trigger")[0] == 401
    assert JobRun.objects.filter(job__name="add").count() == 1 + len(AS_SENT)
