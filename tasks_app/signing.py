"""How a request to the trigger API (and an alert webhook call) is signed: pure functions, no Django.

A client holds a key id (public) and a secret. Every request carries four headers::

    X-Taskhub-Key:        the key id
    X-Taskhub-Timestamp:  the time of signing, whole Unix seconds (digits only)
    X-Taskhub-Nonce:      8-64 random characters of A-Z a-z 0-9 _ -, never reused by this key
    X-Taskhub-Signature:  hex HMAC-SHA256, keyed with the secret's UTF-8 bytes, of

        {timestamp}\\n{METHOD}\\n{path}\\n{sha256 hex of the body}\\n{nonce}

``METHOD`` is upper case; ``path`` is the request target exactly as sent in the request line,
escapes, their case and any ``?query`` (or bare ``?``) included (``/api/jobs/backup/trigger``);
behind a server that does not pass it on, its canonical form (``canonical_target``). The body
digest is taken over the raw bytes sent (an empty body: the digest of no bytes,
``e3b0c442...b855``). Lines are joined by a single ``\\n`` with none at the end. The server
accepts a timestamp at most five minutes from its own clock either way, and each nonce once per
key within that time.

What it is not: it looks up no client and remembers no nonce (``views`` and ``models`` do).
"""

import hashlib
import hmac
import re
import secrets
import time
from urllib.parse import quote

from tasks_app.exceptions import SignatureError

KEY_HEADER = "X-Taskhub-Key"
TIMESTAMP_HEADER = "X-Taskhub-Timestamp"
NONCE_HEADER = "X-Taskhub-Nonce"
SIGNATURE_HEADER = "X-Taskhub-Signature"
HEADERS = (KEY_HEADER, TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER)

WINDOW_SECONDS = 300
NONCE_PATTERN = re.compile(r"[A-Za-z0-9_-]{8,64}")
_TIMESTAMP_PATTERN = re.compile(r"[0-9]{1,12}")
_SIGNATURE_PATTERN = re.compile(r"[0-9a-fA-F]{64}")

# Where WSGI servers put the request line's target: gunicorn's RAW_URI, uWSGI's and mod_wsgi's REQUEST_URI.
RAW_TARGET_KEYS = ("RAW_URI", "REQUEST_URI")
_ABSOLUTE_FORM = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*")  # "GET http://host/path HTTP/1.1"
# RFC 3986's path characters (unreserved, sub-delims, ":" and "@") and "/": never escaped in the canonical form.
PATH_SAFE = "/-._~!$&'()*+,;=:@"


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def canonical(timestamp: str, method: str, path: str, body: bytes) -> str:
    return f"{timestamp}\n{method.upper()}\n{path}\n{body_digest(body)}"


def signature(secret: str, timestamp: str, method: str, path: str, body: bytes, nonce: str) -> str:
    message = f"{canonical(timestamp, method, path, body)}\n{nonce}"
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def sign(
    key_id: str,
    secret: str,
    method: str,
    path: str,
    body: bytes = b"",
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The four headers for one request (a fresh nonce and the current time unless given)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or secrets.token_hex(16)
    return {
        KEY_HEADER: key_id,
        TIMESTAMP_HEADER: stamp,
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: signature(secret, stamp, method, path, body, nonce),
    }


def request_target(environ: dict, path: str) -> str:
    """What a request is signed over: the target as the client sent it, when the server passes it on.

    ``environ`` is the WSGI environ (``request.META``), ``path`` the decoded path Django routes on.
    """
    for key in RAW_TARGET_KEYS:
        if raw := environ.get(key):
            raw = _ABSOLUTE_FORM.sub("", raw, count=1) if _ABSOLUTE_FORM.match(raw) else raw
            return _from_wsgi(raw) or "/"
    return canonical_target(path, _from_wsgi(environ.get("QUERY_STRING", "")))


def canonical_target(path: str, query: str = "") -> str:
    """``path`` as UTF-8 with every byte outside ``PATH_SAFE`` escaped as ``%XX`` (upper-case hex),
    then ``?query`` as received when the query is not empty (a bare ``?`` cannot be seen here)."""
    return quote(path, safe=PATH_SAFE) + (f"?{query}" if query else "")


def _from_wsgi(value: str) -> str:
    # WSGI strings carry the request's bytes as latin-1 (PEP 3333); the client signed their UTF-8 reading.
    try:
        return value.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:  # already text (an ASGI server, Django's test client)
        return value


def check_form(headers: dict[str, str]) -> None:
    """Every header present and well formed, before any lookup or HMAC."""
    missing = [name for name in HEADERS if not headers.get(name)]
    if missing:
        raise SignatureError(f"missing header {', '.join(missing)}")
    if not _TIMESTAMP_PATTERN.fullmatch(headers[TIMESTAMP_HEADER]):
        raise SignatureError(f"{TIMESTAMP_HEADER} must be whole Unix seconds")
    if not NONCE_PATTERN.fullmatch(headers[NONCE_HEADER]):
        raise SignatureError(f"{NONCE_HEADER} must be 8-64 characters of A-Z a-z 0-9 _ -")
    if not _SIGNATURE_PATTERN.fullmatch(headers[SIGNATURE_HEADER]):
        raise SignatureError(f"{SIGNATURE_HEADER} must be 64 hex digits")


def check_fresh(timestamp: str, now: float | None = None) -> None:
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > WINDOW_SECONDS:
        raise SignatureError(
            f"{TIMESTAMP_HEADER} is more than {WINDOW_SECONDS // 60} minutes from the server's clock ({int(now)})"
        )


def check_signature(secret: str, headers: dict[str, str], method: str, path: str, body: bytes) -> None:
    expected = signature(secret, headers[TIMESTAMP_HEADER], method, path, body, headers[NONCE_HEADER])
    if not hmac.compare_digest(expected, headers[SIGNATURE_HEADER].lower()):
        raise SignatureError("bad signature")
