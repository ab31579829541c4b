"""A real browser for the admin tests: Playwright driving Debian's Chromium, headless.

``browser`` starts Chromium once per test module (skipped locally, failed under ``CI``, when
Chromium or Playwright is missing; ``bin/setup --dev`` installs both). ``admin_page`` is a
fresh browser context logged in to a ``live_server`` as a superuser; it records every
console error and every failed response, and the test fails on any of them.
``screenshot(page, name)`` keeps a picture of a page in ``artifacts/browser/`` (or
``$TEST_ARTIFACTS_DIR``), which is git-ignored: CI keeps it as an artifact.
"""

import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import ROOT

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS_DIR") or ROOT / "artifacts") / "browser"
PASSWORD = "browser-test-password"


def _missing(what: str):
    message = f"{what} (bin/setup --dev installs it)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must provide it")
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser():
    """Chromium for one test module: Playwright's loop on this thread must end before other tests use asyncio."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright for Python is not installed")
    executable = shutil.which("chromium")
    if executable is None:
        _missing("Debian's chromium is not installed")
    # Playwright's sync API keeps an asyncio loop on this thread, which Django's ORM takes for an async
    # context. The tests' own ORM calls are plain synchronous code, so tell Django so (for this module
    # only; tests.helpers.clean_env keeps it from the processes they start).
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
            yield chromium
            chromium.close()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    return path


class Problems(list):
    """Console errors, page errors and failed responses seen by one page."""

    def watch(self, page) -> None:
        page.on("console", lambda message: message.type == "error" and self.append(f"console: {message.text}"))
        page.on("pageerror", lambda error: self.append(f"page error: {error}"))
        page.on(
            "response",
            lambda response: (
                response.status >= 400
                and self.append(f"HTTP {response.status}: {response.request.method} {response.url}")
            ),
        )
        page.on("requestfailed", self._request_failed)

    def _request_failed(self, request) -> None:
        if request.failure != "net::ERR_ABORTED":  # a poll cut short by the test moving to another page
            self.append(f"request failed: {request.method} {request.url}: {request.failure}")


def log_in(page, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("operator", "operator@example.invalid", PASSWORD)


@pytest.fixture
def admin_page(browser, live_server, superuser, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=live_server.url)
    context.set_default_timeout(10_000)
    page = context.new_page()
    problems = Problems()
    problems.watch(page)
    log_in(page, live_server.url, superuser.username, PASSWORD)
    page.wait_for_url(f"{live_server.url}/admin/")
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        screenshot(page, f"failed-{request.node.name}")
    context.close()
    assert not problems, "the browser saw problems:\n" + "\n".join(problems)
