"""Every page of every role, the sign-in page, the public notice, the status page and the API docs
under the enforced Content-Security-Policy: the browser reports no violation (neither in the
console nor as a securitypolicyviolation event), and the apply form's live preview (htmx) still
works under it."""

import io
from collections.abc import Callable

import pytest
from django.core.management import call_command
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, expect

from accounts.models import User
from tests.browser.conftest import Portal

pytestmark = pytest.mark.django_db(transaction=True)

ROLES = ("enterprise1", "provider1", "reviewer", "approver", "finance", "auditor", "admin")
OBJECT_KINDS = ("applications", "grants", "settlements", "audits")
# Collects what the page itself hears about (the event fires for violations of inline code too).
LISTEN = """document.addEventListener('securitypolicyviolation', (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  (window.__violations = window.__violations || []).push(`${e.violatedDirective} ${e.blockedURI} ${where}`);
});"""


class Violations:
    """CSP violations seen in the pages of a browser context, page by page."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def watch(self, context: BrowserContext) -> None:
        context.add_init_script(LISTEN)
        context.on("console", self._console)

    def _console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.found.append(f"{message.page.url if message.page else '?'}: {message.text}")

    def check(self, page: Page, where: str) -> None:
        page.wait_for_load_state("load")
        events = page.evaluate("() => window.__violations || []")
        self.found.extend(f"{where}: {event}" for event in events)
        assert self.found == [], self.found


def test_no_page_of_any_role_violates_the_policy(portal_in: Callable[[str], Portal], live_server: object):
    call_command("seed_demo", stdout=io.StringIO())
    portal = portal_in("zh-hans")
    violations = Violations()
    seen = 0

    anonymous = portal.browser.new_context()
    portal.contexts.append(anonymous)
    violations.watch(anonymous)
    page = anonymous.new_page()
    for path in ("/login/", "/public/awards/", "/register/", "/status/", "/api/docs/"):
        response = page.goto(portal.base_url + path)
        assert response is not None and response.status == 200, path
        assert "script-src 'self'" in (response.headers.get("content-security-policy") or ""), path
        violations.check(page, path)
        seen += 1
    expect(page.locator(".swagger-ui .info .title")).to_be_visible()  # Swagger UI ran under its policy.
    violations.check(page, "/api/docs/ rendered")

    for username in ROLES:
        page = portal.sign_in(username)
        violations.watch(page.context)
        links = page.locator("nav.primary a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
        assert links, username
        object_links: dict[str, str] = {}
        for link in links:
            response = page.goto(portal.base_url + link)
            assert response is not None and response.status == 200, (username, link)
            violations.check(page, f"{username} {link}")
            seen += 1
            for href in page.locator("main a").evaluate_all("links => links.map(a => a.getAttribute('href'))"):
                parts = (href or "").strip("/").split("/")
                if len(parts) == 2 and parts[0] in OBJECT_KINDS and parts[1].isdigit():
                    object_links.setdefault(parts[0], href)
        for href in object_links.values():
            response = page.goto(portal.base_url + href)
            assert response is not None and response.status == 200, (username, href)
            violations.check(page, f"{username} {href}")
            seen += 1
    assert seen >= 45


def test_the_live_apply_preview_works_under_the_policy(portal_in: Callable[[str], Portal], live_server: object):
    call_command("seed_demo", stdout=io.StringIO())
    portal = portal_in("en")
    violations = Violations()
    page = portal.sign_in("enterprise1")
    violations.watch(page.context)
    provider = User.objects.get(username="provider1").provider
    assert provider is not None
    page.goto(portal.base_url + "/apply/")
    page.locator("#id_provider").select_option(str(provider.pk))
    page.locator("#id_compute_source").select_option("domestic")
    page.locator("#id_purpose").select_option("training")
    page.locator("#id_contract_fee").fill("1,000.00")
    expect(page.locator("#preview-eligible")).to_have_attribute("data-fen", "30000")
    expect(page.locator("#preview-rate")).to_have_text("30%")
    violations.check(page, "/apply/ with the preview")
    # htmx added no style element of its own (it would be refused, and the indicators with it).
    assert page.evaluate("() => document.querySelectorAll('style').length") == 0
