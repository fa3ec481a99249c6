"""Playwright driving Debian's Chromium against pytest-django's live server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from environment import chromium_path, require_or_skip

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser() -> Iterator:
    path = chromium_path()
    require_or_skip(path is not None, "Debian's Chromium (/usr/bin/chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - dev extras missing
        require_or_skip(False, "the playwright package")
        raise
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


# Registered in every page before its own scripts: each Content-Security-Policy violation the
# browser reports (a refused inline script or style, a script from elsewhere) goes to Python.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.__reportCspViolation(
    `${event.violatedDirective} refused ${event.blockedURI || "inline"} on ${event.documentURI}` +
    (event.sourceFile ? ` (${event.sourceFile}:${event.lineNumber})` : "") +
    (event.sample ? `: ${event.sample}` : "")
  );
});
"""


class Session:
    """One person in their own browser context. Every page it opens reports Content-Security-
    Policy violations (the securitypolicyviolation event, and Chromium's console message about
    them); the open_session fixture fails the test if there were any."""

    def __init__(self, browser, base_url: str):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.set_default_timeout(15_000)
        self.csp_violations: list[str] = []
        self.console: list[str] = []
        self.context.expose_binding(
            "__reportCspViolation", lambda source, text: self.csp_violations.append(text)
        )
        self.context.add_init_script(REPORT_VIOLATIONS)
        self.context.on("page", self._watch)
        self.page = self.context.new_page()
        self.base_url = base_url

    def _watch(self, page) -> None:
        page.on("console", self._console)

    def _console(self, message) -> None:
        text = message.text
        self.console.append(f"{message.type}: {text}")
        if "Content Security Policy" in text:
            self.csp_violations.append(f"console: {text}")

    def go(self, path: str):
        self.page.goto(self.base_url + path)
        return self.page

    def sign_in(self, email: str, password: str):
        page = self.go("/accounts/login/")
        page.get_by_label("E-mail").fill(email)
        page.get_by_label("Password").fill(password)
        page.locator("main form [type=submit]").click()
        page.wait_for_load_state()
        return page

    def close(self):
        self.context.close()


@pytest.fixture
def open_session(browser, live_server):
    sessions: list[Session] = []

    def open_() -> Session:
        session = Session(browser, live_server.url)
        sessions.append(session)
        return session

    yield open_
    violations = [text for session in sessions for text in session.csp_violations]
    for session in sessions:
        session.close()
    assert violations == [], "Content-Security-Policy violations:\n" + "\n".join(violations)
