"""Text the admin shows in a line: a docstring's inline code, a run's result cut short."""

import json
import re

from django.utils.html import format_html, format_html_join

from tasks_app.models import RunStatus

CODE = re.compile(r"``(.+?)``|`([^`]+)`")  # a docstring's inline code, in reST (``x``) or Markdown (`x`)


def inline_code(text: str):
    """``text`` with its inline code as ``<code>``, everything escaped."""
    parts, end = [], 0
    for match in CODE.finditer(text):
        parts.append(format_html("{}<code>{}</code>", text[end : match.start()], match[1] or match[2]))
        end = match.end()
    return format_html_join("", "{}", ((part,) for part in [*parts, text[end:]]))


def plain_code(text: str) -> str:
    """``text`` with the backticks of its inline code dropped (where no HTML may go: a ``<select>``)."""
    return CODE.sub(lambda match: match[1] or match[2], text)


def short_result(run, limit: int = 60) -> str:
    """A succeeded run's result as one line of JSON, cut at ``limit`` characters; empty for others."""
    if run.status != RunStatus.SUCCEEDED or run.result is None:
        return ""
    text = json.dumps(run.result, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"
