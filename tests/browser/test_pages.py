"""Every page of every role, in Chinese and in English, opened in the browser from the role's own
navigation: it answers 200 in the chosen language, every field has a label, every button a name,
every chart a text alternative, and a screenshot of it is saved. Keyboard users get a skip link
first and a visible focus ring."""

import io
from collections.abc import Callable

import pytest
from django.core.management import call_command
from playwright.sync_api import Page, expect

from tests.browser.conftest import ARTIFACTS, Portal, Screens

pytestmark = pytest.mark.django_db(transaction=True)

OBJECT_KINDS = ("applications", "grants", "settlements", "audits")
ROLES = ("enterprise1", "provider1", "reviewer", "approver", "finance", "auditor", "admin")
# In English, the three kinds of navigation: a superuser's holds every staff page.
ROLES_EN = ("enterprise1", "provider1", "admin")

# Form controls without a label, buttons without a name, SVG charts without a text alternative.
UNLABELLED = """() => {
  const visible = (el) => el.offsetParent !== null;
  const bad = [];
  for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
    if (visible(el) && el.labels.length === 0 && !el.getAttribute('aria-label')) bad.push(el.outerHTML.slice(0, 120));
  }
  for (const el of document.querySelectorAll('button')) {
    if (visible(el) && !el.textContent.trim() && !el.getAttribute('aria-label')) bad.push(el.outerHTML.slice(0, 120));
  }
  for (const el of document.querySelectorAll('svg')) {
    const described = el.getAttribute('role') === 'img' && el.getAttribute('aria-label');
    if (!described && el.getAttribute('aria-hidden') !== 'true') bad.push(el.outerHTML.slice(0, 120));
  }
  return bad;
}"""


def check_page(page: Page, language: str) -> None:
    expect(page.locator("html")).to_have_attribute("lang", language)
    assert page.evaluate(UNLABELLED) == []
    assert page.locator("main#main h1").count() == 1


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_every_page_of_every_role(language: str, portal_in: Callable[[str], Portal], live_server: object):
    call_command("seed_demo", stdout=io.StringIO())
    portal = portal_in(language)
    seen = 0
    for username in ROLES if language == "zh-hans" else ROLES_EN:
        screens = Screens(ARTIFACTS / language / username)
        page = portal.sign_in(username)
        links = page.locator("nav.primary a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
        assert links, username
        object_links: dict[str, str] = {}  # kind → the first link to one object of that kind
        for link in links:
            response = page.goto(portal.base_url + link)
            assert response is not None and response.status == 200, (username, link)
            check_page(page, language)
            screens.shoot(page, link.strip("/").replace("/", "-") or "home")
            seen += 1
            for href in page.locator("main a").evaluate_all("links => links.map(a => a.getAttribute('href'))"):
                parts = (href or "").strip("/").split("/")
                if len(parts) == 2 and parts[0] in OBJECT_KINDS and parts[1].isdigit():
                    object_links.setdefault(parts[0], href)
        # One object page of each kind the role's lists link to.
        for href in object_links.values():
            response = page.goto(portal.base_url + href)
            assert response is not None and response.status == 200, (username, href)
            check_page(page, language)
            screens.shoot(page, href.strip("/").replace("/", "-"))
            seen += 1
    assert seen >= (45 if language == "zh-hans" else 25)


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_the_public_notice_and_sign_in_need_no_account(
    language: str, portal_in: Callable[[str], Portal], live_server: object, browser: object
):
    call_command("seed_demo", stdout=io.StringIO())
    portal = portal_in(language)
    context = portal.browser.new_context(viewport={"width": 1280, "height": 900})
    portal.contexts.append(context)
    page = context.new_page()
    screens = Screens(ARTIFACTS / language / "anonymous")
    page.goto(portal.base_url + "/login/")
    if language == "en":
        page.get_by_role("button", name="English").click()
    check_page(page, language)
    screens.shoot(page, "sign-in")
    # The sign-in form puts the cursor in the username field at once.
    assert page.evaluate("() => document.activeElement.name") == "username"
    page.goto(portal.base_url + "/public/awards/")
    check_page(page, language)
    expect(page.locator("main table tbody tr").first).to_contain_text("¥")
    screens.shoot(page, "public-notice")
    # Keyboard: the first Tab reaches the skip link, with a visible focus ring, and it leads to main.
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.className") == "skip"
    assert page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle") == "solid"
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"
    with page.expect_download() as download:
        page.locator('a[href^="/public/awards.csv"]').click()
    assert download.value.suggested_filename.startswith("public-awards")
