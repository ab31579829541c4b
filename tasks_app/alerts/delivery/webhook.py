"""An alert by webhook: a JSON POST to ``TASKHUB_ALERT_WEBHOOK_URL``, signed as the trigger API signs requests.

With ``TASKHUB_ALERT_WEBHOOK_SECRET`` set, the request carries ``X-Taskhub-Key: alerts``,
``X-Taskhub-Timestamp``, ``X-Taskhub-Nonce`` and ``X-Taskhub-Signature``: hex HMAC-SHA256 with the
secret of ``{timestamp}\\nPOST\\n{path?query}\\n{sha256 hex of the body}\\n{nonce}`` (``signing.py``),
so a receiver checks it with the same few lines as the API. Without a secret it is not signed.
Any answer but 2xx, a timeout or a connection error is a failed attempt.
"""

import json

import httpx

from tasks_app import conf, signing
from tasks_app.alerts import messages
from tasks_app.exceptions import AlertDeliveryError

KEY_ID = "alerts"


def send(batch: list) -> None:
    """One call: the alert's body, or a digest's (``"kind": "digest"``) for several."""
    url = conf.get("ALERT_WEBHOOK_URL")
    if not url:
        raise AlertDeliveryError("TASKHUB_ALERT_WEBHOOK_URL is not set")
    content = messages.payload(batch[0]) if len(batch) == 1 else messages.digest_payload(batch)
    body = json.dumps(content, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "taskhub-alerts"}
    secret = conf.get("ALERT_WEBHOOK_SECRET")
    if secret:
        target = httpx.URL(url).raw_path.decode("ascii")  # the request target exactly as sent: path and query
        headers.update(signing.sign(KEY_ID, secret, "POST", target, body))
    response = httpx.post(url, content=body, headers=headers, timeout=conf.get("ALERT_TIMEOUT_SECONDS"))
    if not response.is_success:
        raise AlertDeliveryError(f"HTTP {response.status_code}: {' '.join(response.text.split())[:200]}")
