"""Actions that cannot be taken back ask first: declining sends nothing, accepting goes ahead."""

import io
from collections.abc import Callable

import pytest
from django.core.management import call_command
from playwright.sync_api import Dialog, expect

from accounts.models import Enterprise
from tests.browser.conftest import Portal

pytestmark = pytest.mark.django_db(transaction=True)


def test_suspending_an_enterprise_asks_first(portal_in: Callable[[str], Portal], live_server: object):
    call_command("seed_demo", stdout=io.StringIO())
    enterprise = Enterprise.objects.get(name__startswith="Qiantang")
    portal = portal_in("en")
    page = portal.sign_in("reviewer")
    page.goto(f"{portal.base_url}/enterprises/")
    row = page.locator("tr", has_text=enterprise.name)
    questions: list[str] = []

    def decline(dialog: Dialog) -> None:
        questions.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", decline)
    row.get_by_role("button", name="Suspend").click()
    page.wait_for_timeout(300)
    enterprise.refresh_from_db()
    assert enterprise.status == "verified" and questions and questions[0].startswith("Suspend this enterprise?")

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Suspend").click()
    expect(page.locator(".message.success")).to_contain_text("suspended")
    enterprise.refresh_from_db()
    assert enterprise.status == "suspended"
