"""/api/v1/stats/pool/ and the public notice at /api/v1/public/awards/ (JSON and CSV).

The pool statistics' figures are the ledger's own, and must reconcile with the program year's and
with their recomputation from rows; the breakdowns, computed from rows, must add up to them.
"""

import csv
import dataclasses
import datetime as dt
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Role
from coupons.models import Grant, ProgramYear
from coupons.selectors import pool_stats, program_year_figures_from_rows
from coupons.services.applications import application_approve
from coupons.services.redemptions import redemption_create
from coupons.services.settlements import settlement_create
from coupons.services.years import PROGRAM_TIME_ZONE, program_year_create, program_year_of, program_year_open
from tests.api.conftest import assert_problem
from tests.controls import cap_override_grant, grant_revoke, redemption_reverse, settlement_pay
from tests.coupons.conftest import CAP_FEN, IN_YEAR, POOL_FEN, YEAR, grant_for, submit, to_reviewed
from tests.evidence import invoice
from tests.factories import EnterpriseFactory, ProviderFactory, UserFactory

pytestmark = pytest.mark.django_db

# The token, the caller's roles (one query per role: User.roles), the year, its five ledger
# reads (program_year_figures) and one query per breakdown.
STATS_QUERIES_MAX = 14
PUBLIC_QUERIES_MAX = 2  # The count and the page.
PUBLIC_CSV_QUERIES_MAX = 1


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=PROGRAM_TIME_ZONE)


def grant_in(cast, *, fee_fen: int, compute_source: str = "domestic") -> Grant:
    """A grant for `cast`'s enterprise at `cast`'s provider, for a contract of `fee_fen`."""
    application = to_reviewed(cast, submit(cast, fee_fen=fee_fen, compute_source=compute_source))
    application_approve(application=application, actor=cast.approver)
    return Grant.objects.get(application=application)


def redeem(cast, grant: Grant, bill: str, bill_amount_fen: int, *, capture: bool = True):
    return redemption_create(
        grant=grant,
        bill_number=bill,
        bill_amount_fen=bill_amount_fen,
        actor=cast.clerk,
        capture=capture,
        now=IN_YEAR,
        **invoice(cast.clerk),
    )


@pytest.fixture
def scenario(cast, year):
    """Three grants from two enterprises at two providers, in both compute sources; redemptions
    captured and held; a revocation, a reversal into the lapsed account and a paid settlement."""
    second_provider = ProviderFactory()
    at_second = dataclasses.replace(cast, provider=second_provider, clerk=UserFactory(provider=second_provider))
    second_enterprise = EnterpriseFactory()
    of_second = dataclasses.replace(
        cast, enterprise=second_enterprise, member=UserFactory(enterprise=second_enterprise)
    )

    g1 = grant_in(cast, fee_fen=500_000)  # 30%: 150,000
    redeem(cast, g1, "B-1", 200_000)  # captured 60,000
    redeem(cast, g1, "B-2", 100_000, capture=False)  # held 30,000
    g2 = grant_in(at_second, fee_fen=500_000, compute_source="other")  # 20%: 100,000
    r3 = redeem(at_second, g2, "B-3", 100_000)  # captured 20,000
    grant_revoke(grant=g2, actor=cast.approver, reason="The contract was cancelled.")  # 80,000 back
    redemption_reverse(redemption=r3, actor=cast.approver, reason="Billed in error.")  # 20,000 lapse
    g3 = grant_in(of_second, fee_fen=1_000_000)  # 30%: 300,000
    redeem(of_second, g3, "B-4", 500_000)  # captured 150,000
    settlement = settlement_create(provider=cast.provider, actor=cast.finance)
    settlement_pay(settlement=settlement, actor=cast.finance, bank_reference="ICBC-1")  # 210,000 paid
    return {"g1": g1, "g2": g2, "g3": g3, "second_provider": second_provider, "second_enterprise": second_enterprise}


# --- Pool statistics ------------------------------------------------------------------------------


def test_the_figures_reconcile_with_the_year_and_with_the_rows(cast, scenario, as_user):
    client = as_user(cast.finance)

    stats = client.get(f"/api/v1/stats/pool/?year={YEAR}")
    assert stats.status_code == 200, stats.content
    body = stats.json()
    figures = client.get(f"/api/v1/program-years/{YEAR}/").json()["figures"]

    assert {name: body[name] for name in figures} == figures
    assert {name: body[name] for name in [*figures, "pool_fen"]} == program_year_figures_from_rows(year=YEAR).as_dict()
    assert (body["year"], body["pool_fen"]) == (YEAR, POOL_FEN)
    assert figures == {
        "issued_fen": 550_000,
        "held_fen": 30_000,
        "redeemed_fen": 210_000,
        "settled_fen": 210_000,
        "lapsed_fen": 20_000,
        "revoked_fen": 80_000,
        "available_fen": POOL_FEN - 550_000 + 80_000,
    }


def test_the_breakdowns_add_up_to_the_totals(cast, scenario, as_user):
    body = as_user(cast.reviewer).get(f"/api/v1/stats/pool/?year={YEAR}").json()

    assert body["by_compute_source"] == [
        {"compute_source": "domestic", "issued_fen": 450_000, "redeemed_fen": 210_000, "grants_count": 2},
        {"compute_source": "other", "issued_fen": 100_000, "redeemed_fen": 0, "grants_count": 1},
    ]
    assert body["by_provider"] == [
        {"provider": cast.provider.pk, "name": cast.provider.name, "issued_fen": 450_000, "redeemed_fen": 210_000},
        {
            "provider": scenario["second_provider"].pk,
            "name": scenario["second_provider"].name,
            "issued_fen": 100_000,
            "redeemed_fen": 0,
        },
    ]
    for breakdown in ("by_compute_source", "by_provider"):
        assert sum(row["issued_fen"] for row in body[breakdown]) == body["issued_fen"]
        assert sum(row["redeemed_fen"] for row in body[breakdown]) == body["redeemed_fen"]
    assert sum(row["grants_count"] for row in body["by_compute_source"]) == Grant.objects.count()

    second = scenario["second_enterprise"]
    assert body["top_enterprises"] == [
        # 300,000 of 400,000 used.
        {
            "enterprise": second.pk,
            "name": second.name,
            "issued_fen": 300_000,
            "cap_fen": CAP_FEN,
            "cap_used_share_bp": 7500,
        },
        # 250,000 issued, of which the revocation gave 80,000 back to the cap.
        {
            "enterprise": cast.enterprise.pk,
            "name": cast.enterprise.name,
            "issued_fen": 250_000,
            "cap_fen": CAP_FEN,
            "cap_used_share_bp": 4250,
        },
    ]


def test_top_enterprises_are_ten_at_most_and_show_a_relaxed_cap(cast, year, as_user):

    enterprises = []
    for number in range(12):
        enterprise = EnterpriseFactory(foundation_model_developer=True, foundation_model_developer_verified=True)
        enterprises.append(enterprise)
        grant_in(
            dataclasses.replace(cast, enterprise=enterprise, member=UserFactory(enterprise=enterprise)),
            fee_fen=10_000 * (number + 1),
        )
    cap_override_grant(
        year=YEAR,
        enterprise=enterprises[-1],
        cap_fen=CAP_FEN * 2,
        reason="Foundation model.",
        requested_by=cast.reviewer,
        actor=cast.approver,
    )
    top = as_user(cast.reviewer).get("/api/v1/stats/pool/", {"year": YEAR}).json()["top_enterprises"]
    assert [row["enterprise"] for row in top] == [e.pk for e in reversed(enterprises)][:10]
    assert (top[0]["issued_fen"], top[0]["cap_fen"], top[0]["cap_used_share_bp"]) == (36_000, CAP_FEN * 2, 450)
    assert (top[1]["issued_fen"], top[1]["cap_fen"], top[1]["cap_used_share_bp"]) == (33_000, CAP_FEN, 825)


def test_the_year_defaults_to_the_current_one_and_an_unknown_year_is_404(cast, year, as_user):
    current = program_year_of(timezone.now())
    if current != YEAR:
        program_year_create(year=current, actor=cast.admin)
        program_year_open(year=current, actor=cast.admin)
    client = as_user(UserFactory(roles=[Role.AUDITOR]))
    answer = client.get("/api/v1/stats/pool/")
    assert answer.status_code == 200, answer.content
    assert answer.json()["year"] == current
    assert_problem(client.get("/api/v1/stats/pool/?year=2999"), 404, "not_found")
    assert client.get("/api/v1/stats/pool/?year=").json()["year"] == current
    for bad in ("abc", "1999", "3000", "20261", "2026.5"):
        body = assert_problem(client.get("/api/v1/stats/pool/", {"year": bad}), 400, "validation_error")
        assert "year" in body["errors"], body


def test_a_draft_year_has_no_figures_and_no_forecast(cast, as_user):
    program_year_create(year=YEAR, actor=cast.admin)
    body = as_user(cast.admin).get(f"/api/v1/stats/pool/?year={YEAR}").json()
    assert body["pool_fen"] == body["issued_fen"] == body["available_fen"] == 0
    assert (body["by_compute_source"], body["by_provider"], body["top_enterprises"]) == ([], [], [])
    assert body["forecast_exhausted_on"] is None


def test_members_of_organisations_may_not_see_pool_statistics(cast, year, as_user, anonymous):
    for user in (cast.member, cast.clerk):
        assert_problem(as_user(user).get("/api/v1/stats/pool/"), 403, "permission_denied")
    assert_problem(anonymous.get("/api/v1/stats/pool/"), 401, "not_authenticated")


def test_the_query_count_does_not_grow_with_the_grants(cast, year, as_user, django_assert_max_num_queries):
    client = as_user(cast.reviewer)
    url = f"/api/v1/stats/pool/?year={YEAR}"
    redeem(cast, grant_in(cast, fee_fen=10_000), "B-0", 10_000)
    with django_assert_max_num_queries(STATS_QUERIES_MAX), CaptureQueriesContext(connection) as one:
        assert client.get(url).status_code == 200
    for number in range(1, 20):
        redeem(cast, grant_in(cast, fee_fen=10_000), f"B-{number}", 10_000, capture=number % 2 == 0)
    with django_assert_max_num_queries(STATS_QUERIES_MAX), CaptureQueriesContext(connection) as twenty:
        body = client.get(url).json()
    assert body["by_compute_source"][0]["grants_count"] == 20
    assert len(twenty) == len(one)


# --- The forecast -----------------------------------------------------------------------------------


def opened_on(moment: dt.datetime) -> None:
    ProgramYear.objects.filter(year=YEAR).update(opened_at=moment)


def test_the_forecast_extends_the_average_daily_net_issuance(cast, year):
    opened_on(at(YEAR, 1, 1))
    grant_for(cast, fee_fen=500_000)  # 150,000 issued; 850,000 left.

    # 10 days in: 15,000 a day, so the 850,000 left last 56 days and 16 hours: 8 March, 16:00.
    assert pool_stats(year=YEAR, now=at(YEAR, 1, 11)).forecast_exhausted_on == dt.date(YEAR, 3, 8)
    # Each hour without grants slows the pace: an hour later it is 8 March, 22:40; two, 9 March, 05:20.
    assert pool_stats(year=YEAR, now=at(YEAR, 1, 11, 1)).forecast_exhausted_on == dt.date(YEAR, 3, 8)
    assert pool_stats(year=YEAR, now=at(YEAR, 1, 11, 2)).forecast_exhausted_on == dt.date(YEAR, 3, 9)
    # 100 days in, 1,500 a day: the pool outlasts the year.
    assert pool_stats(year=YEAR, now=at(YEAR, 4, 11)).forecast_exhausted_on is None


def test_the_forecast_counts_from_the_opening_and_over_a_day_at_least(cast, year):
    opened_on(at(YEAR, 6, 1))
    grant_for(cast, fee_fen=500_000)
    # 5 days since opening: 30,000 a day, 850,000 left: 28 days and 8 hours.
    assert pool_stats(year=YEAR, now=at(YEAR, 6, 6)).forecast_exhausted_on == dt.date(YEAR, 7, 4)
    # An hour after opening the pace is taken over a whole day: 150,000 a day, 5 days and 16 hours.
    assert pool_stats(year=YEAR, now=at(YEAR, 6, 1, 1)).forecast_exhausted_on == dt.date(YEAR, 6, 6)


def test_no_forecast_without_net_issuance(cast, year):
    opened_on(at(YEAR, 1, 1))
    assert pool_stats(year=YEAR, now=at(YEAR, 2, 1)).forecast_exhausted_on is None
    grant_revoke(grant=grant_for(cast, fee_fen=500_000), actor=cast.approver, reason="Withdrawn.")
    assert pool_stats(year=YEAR, now=at(YEAR, 2, 1)).forecast_exhausted_on is None


def test_an_exhausted_pool_runs_out_today(cast, year):
    opened_on(at(YEAR, 1, 1))
    for _ in range(3):  # 300,000 each: the cap is 400,000 an enterprise.
        grant_for(cast, fee_fen=1_000_000)
        enterprise = EnterpriseFactory()
        cast = dataclasses.replace(cast, enterprise=enterprise, member=UserFactory(enterprise=enterprise))
    grant_for(cast, fee_fen=1_000_000, amount_fen=100_000)
    assert pool_stats(year=YEAR, now=at(YEAR, 3, 1, 9)).figures.available_fen == 0
    assert pool_stats(year=YEAR, now=at(YEAR, 3, 1, 9)).forecast_exhausted_on == dt.date(YEAR, 3, 1)


def test_the_api_answers_the_forecast_as_an_iso_date(cast, year, as_user):
    # The year opened just now: 300,000 granted within the first day, 700,000 left, a little over two days.
    grant_for(cast, fee_fen=1_000_000)
    expected = pool_stats(year=YEAR).forecast_exhausted_on
    if program_year_of(timezone.now()) == YEAR and timezone.now() < at(YEAR, 12, 29):
        assert expected is not None
    body = as_user(cast.reviewer).get(f"/api/v1/stats/pool/?year={YEAR}").json()
    assert body["forecast_exhausted_on"] == (expected.isoformat() if expected else None)


# --- The public notice ------------------------------------------------------------------------------


CITY = ("hangzhou-compute", "杭州市算力券")


def award_of(grant: Grant) -> dict:
    return {
        "enterprise": grant.enterprise.name,
        "uscc": grant.enterprise.uscc,
        "amount_fen": grant.amount_fen,
        "approved_on": timezone.localtime(grant.issued_at, PROGRAM_TIME_ZONE).date().isoformat(),
        "grant_code": grant.code,
        "program": "hangzhou-compute",
        "program_name": "杭州市算力券",
    }


def test_anyone_reads_the_public_notice_without_revoked_grants(cast, scenario, anonymous):
    answer = anonymous.get("/api/v1/public/awards/")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["count"] == 2 and body["next"] is None
    assert body["results"] == [award_of(scenario["g1"]), award_of(scenario["g3"])]

    assert anonymous.get(f"/api/v1/public/awards/?year={YEAR}").json()["results"] == body["results"]
    assert anonymous.get(f"/api/v1/public/awards/?year={YEAR + 1}").json() == {
        "count": 0,
        "next": None,
        "previous": None,
        "results": [],
    }
    assert "year" in assert_problem(anonymous.get("/api/v1/public/awards/?year=x"), 400, "validation_error")["errors"]
    # A stale or wrong token is no reason to refuse a public page.
    anonymous.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    assert anonymous.get("/api/v1/public/awards/").json() == body


def test_the_public_notice_is_paginated(cast, year, anonymous):
    grants = [grant_for(cast, fee_fen=10_000) for _ in range(3)]
    first = anonymous.get("/api/v1/public/awards/?page_size=2").json()
    assert (first["count"], [r["grant_code"] for r in first["results"]]) == (3, [g.code for g in grants[:2]])
    second = anonymous.get(first["next"]).json()
    assert [r["grant_code"] for r in second["results"]] == [grants[2].code]


def test_the_public_notice_as_csv(cast, scenario, anonymous):
    scenario["second_enterprise"].name = "=HYPERLINK(杭州算力)"
    scenario["second_enterprise"].save(update_fields=["name"])
    cast.enterprise.name = "杭州示例智能科技有限公司"
    cast.enterprise.save(update_fields=["name"])

    answer = anonymous.get(f"/api/v1/public/awards.csv?year={YEAR}", HTTP_ACCEPT="text/csv")
    assert answer.status_code == 200
    assert answer["Content-Type"] == "text/csv; charset=utf-8"
    assert answer["Content-Disposition"] == f'attachment; filename="awards-{YEAR}.csv"'
    text = b"".join(answer.streaming_content).decode("utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    g1, g3 = (Grant.objects.select_related("enterprise").get(pk=scenario[g].pk) for g in ("g1", "g3"))
    assert rows == [
        ["enterprise", "uscc", "amount_fen", "approved_on", "grant_code", "program", "program_name"],
        ["杭州示例智能科技有限公司", g1.enterprise.uscc, "150000", award_of(g1)["approved_on"], g1.code, *CITY],
        # A name a spreadsheet would run as a formula is quoted into text.
        ["'=HYPERLINK(杭州算力)", g3.enterprise.uscc, "300000", award_of(g3)["approved_on"], g3.code, *CITY],
    ]
    assert scenario["g2"].code not in text  # Revoked: withdrawn from the notice.

    everything = anonymous.get("/api/v1/public/awards.csv")
    assert everything["Content-Disposition"] == 'attachment; filename="awards.csv"'
    assert b"".join(everything.streaming_content).decode() == text
    empty = anonymous.get(f"/api/v1/public/awards.csv?year={YEAR + 1}")
    assert b"".join(empty.streaming_content).decode() == (
        "enterprise,uscc,amount_fen,approved_on,grant_code,program,program_name\r\n"
    )
    assert_problem(anonymous.get("/api/v1/public/awards.csv?year=1"), 400, "validation_error")


def test_the_public_notice_reads_a_fixed_number_of_queries(cast, year, anonymous, django_assert_max_num_queries):
    grant_for(cast, fee_fen=10_000)
    counts = []
    for total in (1, 20):
        while Grant.objects.count() < total:
            grant_for(cast, fee_fen=10_000)
        with django_assert_max_num_queries(PUBLIC_QUERIES_MAX), CaptureQueriesContext(connection) as page:
            assert len(anonymous.get("/api/v1/public/awards/").json()["results"]) == total
        with django_assert_max_num_queries(PUBLIC_CSV_QUERIES_MAX), CaptureQueriesContext(connection) as file:
            lines = b"".join(anonymous.get("/api/v1/public/awards.csv").streaming_content).decode().splitlines()
            assert len(lines) == total + 1
        counts.append((len(page), len(file)))
    assert counts[0] == counts[1]
