"""Browser tests: Playwright driving Debian's Chromium (/usr/bin/chromium) against a live server.

The browser is the system's, never a downloaded one; `.ci/run` installs it with apt-get. Each
person signs in in a browser context of their own, through the real sign-in form, in the chosen
language (switched with the header's button, as a person would). Screenshots of every page go to
test-artifacts/screenshots/<language>/.
"""

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

# Playwright's sync API keeps an event loop in the test's thread; the Django calls the tests make
# between browser steps are ordinary blocking calls, so Django's async-safety guard stands down.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
DEMO_PASSWORD = "demo-pass-2026"
ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "screenshots"
STEP_TIMEOUT_MS = 15_000
# Assertions wait as long as actions (Playwright's own default for `expect` is 5 s, too short for a
# form that uploads and submits on a loaded 2-core machine running the suite in parallel).
expect.set_options(timeout=STEP_TIMEOUT_MS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every browser test is slow (a live server and Chromium): their modules start first in a
    parallel run (tests/conftest.py)."""
    for item in items:
        if "tests/browser/" in item.nodeid:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install chromium (as .ci/run does)"
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
    yield browser
    browser.close()


@dataclass
class Screens:
    """Numbered full-page screenshots of one walk, in the order the pages were seen."""

    folder: Path
    taken: list[Path] = field(default_factory=list)

    def shoot(self, page: Page, name: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{len(self.taken) + 1:02d}-{re.sub(r'[^a-z0-9-]+', '-', name.lower())}.png"
        page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)


@dataclass
class Portal:
    """The live portal, and people signing in to it in one language."""

    browser: Browser
    base_url: str
    language: str
    contexts: list[BrowserContext] = field(default_factory=list)

    def sign_in(self, username: str) -> Page:
        context = self.browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
        context.set_default_timeout(STEP_TIMEOUT_MS)
        self.contexts.append(context)
        page = context.new_page()
        page.goto(self.base_url + "/login/")
        # Chinese first, whatever the browser asks for (its locale here is en-US).
        expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
        if self.language == "en":
            page.get_by_role("button", name="English").click()
            expect(page.locator("html")).to_have_attribute("lang", "en")
        page.get_by_label(re.compile("^(Username|用户名)")).fill(username)
        page.get_by_label(re.compile("^(Password|密码)")).fill(DEMO_PASSWORD)
        page.locator("#sign-in").click()
        expect(page).not_to_have_url(re.compile("/login/"))
        return page

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def portal_in(browser: Browser, live_server: object) -> Iterator[object]:
    made: list[Portal] = []

    def make(language: str) -> Portal:
        portal = Portal(browser=browser, base_url=str(live_server), language=language)
        made.append(portal)
        return portal

    yield make
    for portal in made:
        portal.close()
