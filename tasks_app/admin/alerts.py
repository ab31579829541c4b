"""The job page's alerts: its last messages (kind, channel, sent / failed / pending, when, last error), read-only."""

from django.utils.html import format_html, format_html_join

from tasks_app.admin.display import EMPTY, local_time
from tasks_app.models import AlertStatus

SHOWN = 20
# Each message status wears the badge of the run status that reads the same.
BADGES = {AlertStatus.SENT: "succeeded", AlertStatus.FAILED: "failed", AlertStatus.PENDING: "queued"}


def alerts_panel(job):
    """The last ``SHOWN`` alert messages of ``job`` as a table (one query)."""
    if job.pk is None:
        return EMPTY
    messages = list(job.alert_messages.order_by("-created_at", "-pk")[:SHOWN])
    if not messages:
        return format_html('<p class="help">{}</p>', "No alerts yet.")
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>"
        '<span class="taskhub-badge taskhub-{}">{}</span></td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>',
        (
            (
                local_time(m.created_at, job.timezone),
                m.get_kind_display(),
                m.get_channel_display(),
                BADGES[m.status],
                m.get_status_display(),
                m.attempts,
                local_time(m.sent_at, job.timezone) if m.sent_at else EMPTY,
                m.last_error or "",
            )
            for m in messages
        ),
    )
    return format_html(
        '<table class="taskhub-table" id="job-alerts"><thead><tr><th scope="col">When</th><th scope="col">Kind</th>'
        '<th scope="col">Channel</th><th scope="col">Status</th><th scope="col">Attempts</th><th scope="col">Sent</th>'
        '<th scope="col">Last error</th></tr></thead><tbody>{}</tbody></table>',
        rows,
    )
