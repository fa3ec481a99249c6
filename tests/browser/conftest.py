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


class Session:
    """One person in their own browser context."""

    def __init__(self, browser, base_url: str):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.set_default_timeout(15_000)
        self.page = self.context.new_page()
        self.base_url = base_url

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
    for session in sessions:
        session.close()
