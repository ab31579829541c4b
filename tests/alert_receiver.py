"""A real HTTP receiver for alert webhooks: ``http.server`` on 127.0.0.1 (port 0) in a thread.

It checks each call's signature as a user's receiver would (``tasks_app.signing``), keeps what
it received, and answers with the statuses the test queues (200 once they run out), optionally
after a delay (to make a sender time out, or two senders overlap).
"""

import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from django.core import mail
from django.test import override_settings

from tasks_app import signing
from tasks_app.exceptions import SignatureError

SECRET = "alert-webhook-test-secret"


class Receiver:
    def __init__(self, secret: str = SECRET):
        self.secret = secret
        self.calls: list[dict] = []  # bodies with a valid signature
        self.refused: list[str] = []  # why a call's signature did not check
        self.statuses: list[int] = []  # answers still to give, in order
        self.delay = 0.0
        self.during = None  # called in the request, before the answer: what the test looks at while a send waits
        self.seen_during: list = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/taskhub?team=ops"

    def kinds(self) -> list[str]:
        return [call["kind"] for call in self.calls]

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if receiver.during is not None:
                    receiver.seen_during.append(receiver.during())
                time.sleep(receiver.delay)
                headers = {name: self.headers.get(name, "") for name in signing.HEADERS}
                try:
                    signing.check_form(headers)
                    signing.check_fresh(headers[signing.TIMESTAMP_HEADER])
                    signing.check_signature(receiver.secret, headers, "POST", self.path, body)
                except SignatureError as exc:
                    with receiver.lock:
                        receiver.refused.append(str(exc))
                    status = 401
                else:
                    with receiver.lock:
                        status = receiver.statuses.pop(0) if receiver.statuses else 200
                        if status == 200:
                            receiver.calls.append(json.loads(body))
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the sender timed out and hung up
                    pass

            def log_message(self, *args):
                pass

        return Handler

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.delay = 0.0
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@contextlib.contextmanager
def receiving(taskhub_settings, admins=(("ops", "ops@example.com"),), **alert_settings):
    """A receiver the alert settings point at (signed with ``SECRET``), ``ADMINS`` set (None: left as it is),
    and an empty mail outbox. ``alert_settings`` are more ``TASKHUB`` values (``ALERT_EMAILS`` is empty unless given).
    """
    with Receiver() as receiver:
        taskhub_settings(
            **{"ALERT_WEBHOOK_URL": receiver.url, "ALERT_WEBHOOK_SECRET": SECRET, "ALERT_EMAILS": [], **alert_settings}
        )
        # Entered after the TASKHUB override, left before it: overrides must nest.
        with override_settings(ADMINS=list(admins)) if admins is not None else contextlib.nullcontext():
            mail.outbox.clear()
            yield receiver
