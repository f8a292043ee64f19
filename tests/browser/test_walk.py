"""The issue's walk in a real browser, in Chinese and in English: an enterprise applies (with the
live preview), the computing center confirms, a reviewer reviews, a different approver approves,
the computing center redeems a bill, the enterprise acknowledges it, and the pool dashboard moves
by exactly those amounts, as GET /api/v1/stats/pool/ says too. Every page seen is saved as a screenshot."""

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone, translation
from playwright.sync_api import Dialog, Page, expect

from accounts.models import User
from coupons.models import Application, Grant, Redemption
from coupons.services.years import PROGRAM_TIME_ZONE
from tests.browser.conftest import ARTIFACTS, Portal, Screens
from tests.portal.conftest import FIGURES

pytestmark = pytest.mark.django_db(transaction=True)

CONTRACT_FEE = "1,000,000.00"  # yuan: 100,000,000 fen
GRANT_FEN = 30_000_000  # 30% of the fee (domestic compute, training)
BILL = "200,000.00"
COUPON_FEN = 6_000_000  # 30% of the bill
SAMPLES = Path(__file__).resolve().parents[2] / "evidence" / "samples"
INVOICE_NUMBERS = {"zh-hans": "26330100000000000001", "en": "26330100000000000002"}


def said(language: str, message: str) -> str:
    with translation.override(language):
        return translation.gettext(message)


def dashboard_figures(page: Page, base_url: str, screens: Screens, name: str) -> dict[str, int]:
    """The dashboard's figures, read from the page; they must equal the API's for the same year."""
    year = timezone.localtime(timezone.now(), PROGRAM_TIME_ZONE).year
    page.goto(f"{base_url}/dashboard/?year={year}")
    screens.shoot(page, name)
    shown = {key: int(page.locator(f'[data-figure="{key}"]').get_attribute("data-fen") or "") for key in FIGURES}
    api = page.request.get(f"{base_url}/api/v1/stats/pool/?year={year}")
    assert api.status == 200
    assert shown == {key: api.json()[key] for key in FIGURES}
    # The "All programs" table: the default program's row is the figures above, and each total is the
    # sum of the programs' rows, as GET /api/v1/stats/programs/ says.
    overview = page.request.get(f"{base_url}/api/v1/stats/programs/?year={year}").json()
    rows = page.locator("#programs-overview tr[data-program]")
    table: dict[str, dict[str, int]] = {}
    for index in range(rows.count()):
        row = rows.nth(index)
        cells = row.locator("[data-overview-figure]")
        table[row.get_attribute("data-program") or ""] = {
            cells.nth(i).get_attribute("data-overview-figure") or "": int(cells.nth(i).get_attribute("data-fen") or "")
            for i in range(cells.count())
        }
    assert set(table) == {row["program"] for row in overview["programs"]} | {"all"}
    assert all(table["hangzhou-compute"][key] == shown[key] for key in table["hangzhou-compute"])
    for key, total in table["all"].items():
        assert (
            total
            == overview["totals"][key]
            == sum(figures[key] for program, figures in table.items() if program != "all")
        )
    return shown


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_the_whole_walk_in_the_browser(language: str, portal_in: Callable[[str], Portal], live_server: object):
    call_command("seed_demo", stdout=io.StringIO())
    portal = portal_in(language)
    base = portal.base_url
    screens = Screens(ARTIFACTS / language / "walk")
    contract = f"WALK-{language.upper()}-001"
    provider = User.objects.get(username="provider1").provider
    assert provider is not None

    admin = portal.sign_in("admin")
    before = dashboard_figures(admin, base, screens, "dashboard-before")

    # The enterprise applies, watching the preview.
    enterprise = portal.sign_in("enterprise1")
    screens.shoot(enterprise, "enterprise-overview")
    enterprise.get_by_role("link", name=said(language, "Apply"), exact=True).click()
    previews: list[str] = []
    enterprise.on("request", lambda request: previews.append(request.url) if "/apply/preview/" in request.url else None)
    enterprise.locator("#id_provider").select_option(str(provider.pk))
    enterprise.locator("#id_contract_number").fill(contract)
    enterprise.locator("#id_compute_source").select_option("domestic")
    enterprise.locator("#id_purpose").select_option("training")
    enterprise.locator("#id_contract_fee").fill(CONTRACT_FEE)
    this_year = timezone.localtime(timezone.now(), PROGRAM_TIME_ZONE).year
    enterprise.locator("#id_contract_file").set_input_files(str(SAMPLES / "contract.pdf"))
    enterprise.locator("#id_contract_signed_on").fill(f"{this_year}-01-01")
    enterprise.locator("#id_contract_term_months").fill("12")
    expect(enterprise.locator("#preview-eligible")).to_have_attribute("data-fen", str(GRANT_FEN))
    expect(enterprise.locator("#preview-rate")).to_have_text("30%")
    expect(enterprise.locator("#preview-eligible")).to_have_text("¥300,000.00")
    screens.shoot(enterprise, "apply-with-preview")
    # The preview is a GET: it must not put the CSRF token in URLs (logs, referrers).
    assert previews and not any("csrfmiddlewaretoken" in url for url in previews)
    # The preview answers each change of the form (htmx, 300 ms after typing stops): submit once it
    # has settled, so that no preview request is in flight when the page navigates away.
    enterprise.wait_for_load_state("networkidle")
    expect(enterprise.locator("form.htmx-request")).to_have_count(0)
    enterprise.locator("#submit-application").click()
    expect(enterprise.locator("#application-status")).to_have_attribute("data-status", "submitted")
    expect(enterprise.locator(".message.success")).to_contain_text(
        said(language, "Application submitted. The computing center will confirm the contract.")
    )
    screens.shoot(enterprise, "application-submitted")
    application = Application.objects.get(contract_number=contract)
    application_url = f"{base}/applications/{application.pk}/"

    # The computing center confirms the contract from its first page.
    clerk = portal.sign_in("provider1")
    screens.shoot(clerk, "provider-contracts-to-confirm")
    clerk.locator("tr", has_text=contract).get_by_role("button", name=said(language, "Confirm")).click()
    expect(clerk.locator(".message.success")).to_contain_text(said(language, "Contract confirmed."))
    assert Application.objects.get(pk=application.pk).status == "confirmed"

    # A reviewer finds it in the queue and recommends the eligible amount (pre-filled).
    reviewer = portal.sign_in("reviewer")
    reviewer.goto(f"{base}/review/")
    screens.shoot(reviewer, "review-queue")
    reviewer.locator("tr", has_text=provider.name).get_by_role("link", name=f"#{application.pk}").click()
    expect(reviewer.locator("#id_recommended")).to_have_value("300000.00")
    expect(reviewer.locator("#approve")).to_have_count(0)  # The reviewer may not approve.
    # The contract is listed beside the figures, with its download link; the reviewer ticks it as checked.
    expect(reviewer.locator("#documents a.download")).to_have_count(1)
    reviewer.locator(f"#checked-{application.contract_document_id}").check()
    screens.shoot(reviewer, "application-to-review")
    reviewer.locator("#review").click()
    expect(reviewer.locator("#application-status")).to_have_attribute("data-status", "reviewed")
    expect(reviewer.locator("#reviewed-by")).to_have_text("reviewer")

    # A different approver sees four eyes and approves.
    approver = portal.sign_in("approver")
    approver.goto(application_url)
    expect(approver.locator("#four-eyes")).to_contain_text("reviewer")
    screens.shoot(approver, "application-to-approve")
    approver.locator("#approve").click()
    expect(approver.locator("#application-status")).to_have_attribute("data-status", "approved")
    expect(approver.locator("#approved-by")).to_have_text("approver")
    code = approver.locator("#grant-code").inner_text()
    screens.shoot(approver, "application-approved")
    grant = Grant.objects.get(application=application)
    assert (grant.code, grant.amount_fen) == (code, GRANT_FEN)

    # The computing center redeems one bill against the coupon and captures it.
    clerk.goto(f"{base}/redeem/")
    clerk.get_by_label(said(language, "Coupon code")).fill(code)
    clerk.get_by_label(said(language, "Bill number")).fill(f"BILL-{language}-1")
    clerk.get_by_label(said(language, "Bill amount (yuan)")).fill(BILL)
    clerk.get_by_label(said(language, "Invoice number")).fill(INVOICE_NUMBERS[language])
    clerk.locator("#id_invoice_file").set_input_files(str(SAMPLES / "invoice.ofd"))
    screens.shoot(clerk, "redeem-form")
    clerk.locator("#redeem").click()
    expect(clerk.locator(".message.success")).to_contain_text("¥60,000.00")
    expect(clerk.locator(".message.success")).to_contain_text("¥140,000.00")
    screens.shoot(clerk, "redemptions")
    redemption = Redemption.objects.get(grant=grant)
    assert (redemption.status, redemption.coupon_fen) == ("captured", COUPON_FEN)
    assert (redemption.invoice_number, redemption.invoice_document.content_type) == (
        INVOICE_NUMBERS[language],
        "application/ofd",
    )

    # The enterprise sees its coupon with what is left on it.
    enterprise.goto(f"{base}/enterprise/")
    expect(enterprise.locator("#coupons tr", has_text=code)).to_contain_text("¥240,000.00")
    screens.shoot(enterprise, "enterprise-overview-after")

    # It acknowledges the bill the center captured in its name (the button asks first).
    questions: list[str] = []

    def accept(dialog: Dialog) -> None:
        questions.append(dialog.message)
        dialog.accept()

    enterprise.once("dialog", accept)
    enterprise.locator(f"#bill-{redemption.pk}").get_by_role("button", name=said(language, "Acknowledge")).click()
    expect(enterprise.locator(".message.success")).to_be_visible()
    redemption.refresh_from_db()
    assert redemption.acknowledgement == "confirmed"
    assert redemption.acknowledged_by_id == User.objects.get(username="enterprise1").pk
    assert questions == [
        said(language, "Acknowledge this bill? The fund will pay the computing center for it. This cannot be undone.")
    ]

    # The dashboard moved by exactly the amounts of the walk.
    after = dashboard_figures(admin, base, screens, "dashboard-after")
    change = {key: after[key] - before[key] for key in FIGURES}
    assert change == {
        "pool_fen": 0,
        "issued_fen": GRANT_FEN,
        "held_fen": 0,
        "redeemed_fen": COUPON_FEN,
        "settled_fen": 0,
        "lapsed_fen": 0,
        "revoked_fen": 0,
        "available_fen": -GRANT_FEN,
    }
    assert len(screens.taken) >= 12 and all(path.stat().st_size > 10_000 for path in screens.taken)
