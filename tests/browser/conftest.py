"""Playwright driving Debian's Chromium against pytest-django's live server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from environment import chromium_path, require_or_skip

try:
    from playwright.sync_api import Error as PlaywrightError
except ImportError:  # pragma: no cover - dev extras missing; the browser fixture skips
    PlaywrightError = Exception  # type: ignore[assignment,misc]

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
# axe-core, vendored for the tests only (tests/browser/vendor/README.md): never served by the app.
AXE_SOURCE = (Path(__file__).resolve().parent / "vendor" / "axe.min.js").read_text()
# WCAG 2.2 at levels A and AA (axe tags the 2.0, 2.1 and 2.2 criteria separately).
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
# axe refuses a second run while one is going: runs on one page wait for each other.
RUN_AXE = """async (tags) => {
  const run = () => axe.run(document, {
    runOnly: {type: "tag", values: tags},
    resultTypes: ["violations"],
  });
  window.__axeQueue = (window.__axeQueue || Promise.resolve()).catch(() => null).then(run);
  const result = await window.__axeQueue;
  return result.violations.map((v) => ({
    id: v.id,
    impact: v.impact,
    help: v.help,
    nodes: v.nodes.map((n) =>
      `${n.target.join(" ")}: ${(n.failureSummary || "").split("\\n").slice(1).join(" ")}`),
  }));
}"""
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


def _serve(html: bytes):
    """A route handler answering with ``html`` (Playwright passes the request too to a handler
    of two arguments, so the page is bound here, not as a default argument)."""

    def fulfill(route) -> None:
        route.fulfill(status=200, body=html, content_type="text/html; charset=utf-8")

    return fulfill


class Session:
    """One person in their own browser context. Every page it opens reports Content-Security-
    Policy violations (the securitypolicyviolation event, and Chromium's console message about
    them), and every document it loads is checked by axe-core against WCAG 2.2 A and AA; the
    open_session fixture fails the test if there were any violations of either.

    axe runs from Python on each page's load event, through the DevTools protocol, so the site's
    Content-Security-Policy stays as strict as in production. A page the test left before axe
    finished (a click that navigates at once) is opened again, by GET in the same browser
    context, when the test ends: every page a test visits is checked. A page that was the answer
    to a POST (a form shown again with its errors, a token shown once) cannot be asked for
    again: its HTML is kept, and the check at the end serves that HTML at its own address."""

    def __init__(self, browser, base_url: str, *, viewport: dict[str, int] | None = None):
        self.context = browser.new_context(viewport=viewport or {"width": 1280, "height": 900})
        self.context.set_default_timeout(15_000)
        self.csp_violations: list[str] = []
        self.a11y_violations: list[str] = []
        self.checked: list[str] = []
        self.unchecked: list[str] = []
        # The HTML of each page rendered as the answer to a POST, by address, until it is checked.
        self.posted: dict[str, bytes] = {}
        self.unchecked_posted: list[tuple[str, bytes]] = []
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
        page.on("response", self._keep_posted)
        page.on("load", lambda: self._audit(page))

    def _keep_posted(self, response) -> None:
        request = response.request
        if not request.is_navigation_request() or not response.url.startswith(self.base_url):
            return
        if request.method == "POST" and not 300 <= response.status < 400:
            try:
                self.posted[response.url] = response.body()
            except PlaywrightError:  # the test moved on before the body arrived: nothing to keep
                self.posted.pop(response.url, None)
        else:
            self.posted.pop(response.url, None)

    def _audit(self, page) -> None:
        url = page.url
        if not url.startswith(self.base_url):
            return
        try:
            found = self.axe(page)
        except PlaywrightError:
            # The test moved on (or the page closed) before axe finished: checked at the end.
            if url in self.posted:
                self.unchecked_posted.append((url, self.posted.pop(url)))
            else:
                self.unchecked.append(url)
            return
        self.posted.pop(url, None)
        self.checked.append(url)
        self.a11y_violations.extend(found)

    def axe(self, page) -> list[str]:
        """The WCAG 2.2 A/AA violations on the page as it is now, one line per rule."""
        if not page.evaluate("() => typeof window.axe === 'object'"):
            page.evaluate(AXE_SOURCE)
        path = page.url.removeprefix(self.base_url)
        return [
            f"{path} [{v['impact']}] {v['id']}: {v['help']}\n    " + "\n    ".join(v["nodes"])
            for v in page.evaluate(RUN_AXE, AXE_TAGS)
        ]

    def audit_unchecked(self) -> None:
        """Open again each page the test left before axe could finish with it, and check it."""
        pending = [url for url in dict.fromkeys(self.unchecked) if url not in self.checked]
        if not pending and not self.unchecked_posted:
            return
        page = self.context.new_page()
        for url in pending:
            page.goto(url)
            page.wait_for_load_state()
            self.a11y_violations.extend(self.axe(page))
            self.checked.append(url)
        for url, html in self.unchecked_posted:
            # The answer to the POST, served again by the browser itself; its styles and
            # scripts still come from the live server.
            page.route(url, _serve(html))
            page.goto(url)
            page.wait_for_load_state()
            self.a11y_violations.extend(self.axe(page))
            page.unroute(url)
        self.unchecked_posted.clear()
        page.close()

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

    def open_(*, viewport: dict[str, int] | None = None) -> Session:
        session = Session(browser, live_server.url, viewport=viewport)
        sessions.append(session)
        return session

    yield open_
    for session in sessions:
        session.audit_unchecked()
    violations = [text for session in sessions for text in session.csp_violations]
    inaccessible = list(
        dict.fromkeys(text for session in sessions for text in session.a11y_violations)
    )
    for session in sessions:
        session.close()
    assert violations == [], "Content-Security-Policy violations:\n" + "\n".join(violations)
    assert inaccessible == [], "WCAG 2.2 AA violations (axe-core):\n" + "\n".join(inaccessible)
