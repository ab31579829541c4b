"""What an alert says: one line of text, an e-mail, and the webhook's JSON body, from its outbox row —
or, for a digest (``outbox.py``), from several rows of one kind.

Composed when it is sent, from the row, its streak, its job and its run (the run may have gone
to retention since: the body then has no run).
"""

from django.urls import reverse

from tasks_app import conf
from tasks_app.models import AlertKind, AlertMessage

DIGEST_NAMES = 10  # a digest's headline names this many jobs, then says how many more


def error_summary(error: str) -> str:
    """The last line of a traceback: the exception and its message."""
    return (error.strip().splitlines() or [""])[-1][:300]


def admin_link(message: AlertMessage) -> str:
    path = reverse("admin:tasks_app_job_change", args=[message.job_id])
    return conf.get("PUBLIC_URL").rstrip("/") + path


def headline(message: AlertMessage) -> str:
    job, streak, run = message.job, message.streak, message.run
    if message.kind == AlertKind.FAILING:
        return f"taskhub: job {job.name} is failing ({streak.detail})"
    if message.kind == AlertKind.OVERDUE:
        return f"taskhub: job {job.name} is overdue: {streak.detail}"
    if streak.kind == AlertKind.FAILING:
        return f"taskhub: job {job.name} recovered: run #{run.pk if run else '?'} succeeded"
    if not job.enabled:
        return f"taskhub: job {job.name} is no longer overdue: it is paused"
    if run is not None and streak.slot is not None and run.scheduled_for >= streak.slot:
        return f"taskhub: job {job.name} is no longer overdue: it ran again"
    return f"taskhub: job {job.name} is no longer overdue"


def payload(message: AlertMessage) -> dict:
    """The webhook's JSON body (``text`` makes it a valid Slack or Teams incoming-webhook message as well)."""
    run, streak = message.run, message.streak
    return {
        "id": message.pk,  # the same for every retry of one message: receivers can drop repeats
        "kind": message.kind,
        "streak": streak.kind,
        "job": message.job.name,
        "run": run.pk if run else None,
        "status": run.status if run else None,
        "error": error_summary(run.error) if run and message.kind == AlertKind.FAILING else "",
        "detail": streak.detail,
        "slot": streak.slot.isoformat() if streak.slot else None,
        "at": message.created_at.isoformat(),
        "admin_url": admin_link(message),
        "text": headline(message),
    }


def email(message: AlertMessage) -> tuple[str, str]:
    """Subject and body of the e-mail."""
    body = payload(message)
    lines = [
        body["text"],
        "",
        f"Job:    {body['job']}",
        f"Run:    {body['run'] or '—'} ({body['status'] or 'no run'})",
    ]
    if body["error"]:
        lines.append(f"Error:  {body['error']}")
    lines += [f"At:     {body['at']}", "", body["admin_url"]]
    return subject(body["text"]), "\n".join(lines) + "\n"


def digest_headline(batch: list[AlertMessage]) -> str:
    """One line for many alerts of one kind: how many jobs, and the first few names."""
    names = [m.job.name for m in batch]
    shown = ", ".join(names[:DIGEST_NAMES]) + (
        f" and {len(names) - DIGEST_NAMES} more" if len(names) > DIGEST_NAMES else ""
    )
    state = {
        AlertKind.FAILING: "are failing",
        AlertKind.OVERDUE: "are overdue",
        AlertKind.RECOVERED: "recovered",
    }[batch[0].kind]
    return f"taskhub: {len(batch)} jobs {state}: {shown}"


def digest_payload(batch: list[AlertMessage]) -> dict:
    """The webhook's body for a digest: ``kind`` "digest", each alert's own body in ``alerts``."""
    return {
        "kind": "digest",
        "of": batch[0].kind,
        "count": len(batch),
        "alerts": [payload(m) for m in batch],
        "text": digest_headline(batch),
    }


def digest_email(batch: list[AlertMessage]) -> tuple[str, str]:
    """Subject and body of a digest e-mail: a line per alert, with its job's admin link."""
    lines = [digest_headline(batch), ""]
    for m in batch:
        lines += [headline(m).removeprefix("taskhub: "), f"    {admin_link(m)}"]
    return subject(digest_headline(batch)), "\n".join(lines) + "\n"


def subject(text: str) -> str:
    """A header is one line: a job name written by raw SQL may hold a line break (Django refuses to send it)."""
    return f"[taskhub] {' '.join(text.removeprefix('taskhub: ').split())}"[:200]
