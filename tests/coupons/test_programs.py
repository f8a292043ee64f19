"""Two programs side by side: each year has its own accounts, chain, pool and caps; an application
goes to the program it names; the reset, the audit and the API keep them apart (docs/programs.md)."""

import pytest

from config.errors import InvalidState, NotFound, ValidationFailed
from coupons import books
from coupons.errors import DuplicateContract, ProgramClosed
from coupons.models import DEFAULT_PROGRAM, Application, Grant, Program, ProgramYear
from coupons.services.applications import application_approve
from coupons.services.audit import audit_execute, audit_run_create
from coupons.services.redemptions import redemption_create
from coupons.services.reset import annual_reset
from coupons.services.years import program_close, program_year_create, program_year_get, program_year_open, year_end
from ledger.chain import ledger_seal
from ledger.models import Transfer
from ledger.selectors import account_balance, account_get
from tests.coupons.conftest import CAP_FEN, IN_YEAR, POOL_FEN, YEAR, Cast, submit, to_reviewed
from tests.evidence import invoice

DISTRICT = "binjiang-compute"


def district_program() -> Program:
    return Program.objects.create(
        slug=DISTRICT,
        name="滨江区算力券",
        name_en="Binjiang District computing-power coupons",
        authority="滨江区经济和信息化局",
        level=Program.Level.DISTRICT,
        region=["3301"],
    )


@pytest.fixture
def both(cast: Cast, year: ProgramYear) -> tuple[ProgramYear, ProgramYear]:
    """The city's year (the `year` fixture) and the district's, the district's pool a tenth of the city's."""
    district_program()
    program_year_create(
        year=YEAR, actor=cast.admin, program=DISTRICT, pool_fen=POOL_FEN // 10, default_cap_fen=CAP_FEN // 10
    )
    return year, program_year_open(year=YEAR, actor=cast.admin, program=DISTRICT)


def balance(code: str):  # type: ignore[no-untyped-def]
    return account_balance(account_id=account_get(code=code).pk)


def grant_in(cast: Cast, program: str, number: str, fee_fen: int = 100_000) -> Grant:
    application = to_reviewed(cast, submit(cast, fee_fen=fee_fen, number=number, program=program))
    application_approve(application=application, actor=cast.approver)
    return Grant.objects.get(application=application)


def test_each_program_year_has_its_own_accounts_and_chain(cast, both):
    city, district = both
    assert (city.program_id, district.program_id) == (DEFAULT_PROGRAM, DISTRICT)
    assert district.chain == f"{DISTRICT}:{YEAR}" and city.chain != district.chain
    assert balance(f"pool:{DEFAULT_PROGRAM}:{YEAR}").available_fen == POOL_FEN
    assert balance(f"pool:{DISTRICT}:{YEAR}").available_fen == POOL_FEN // 10
    opening = Transfer.objects.get(credit_account__code=f"pool:{DISTRICT}:{YEAR}", reason="year_open")
    assert opening.chain == district.chain and opening.key == f"year:{district.pk}:open"


def test_an_application_goes_to_the_program_it_names_and_draws_on_that_pool_and_cap(cast, both):
    city, district = both
    grant = grant_in(cast, DISTRICT, "D-1")  # 30% of 100,000
    assert (grant.year_id, grant.application.program_id) == (district.pk, DISTRICT)
    assert grant.account.code == f"grant:{DISTRICT}:{YEAR}:{grant.application_id}"
    assert balance(f"pool:{DISTRICT}:{YEAR}").available_fen == POOL_FEN // 10 - 30_000
    assert balance(f"cap:{DISTRICT}:{YEAR}:{cast.enterprise.pk}").available_fen == CAP_FEN // 10 - 30_000
    # The city's pool and the enterprise's city cap are untouched.
    assert balance(f"pool:{DEFAULT_PROGRAM}:{YEAR}").available_fen == POOL_FEN
    assert not Transfer.objects.filter(
        debit_account__code=f"cap:{DEFAULT_PROGRAM}:{YEAR}:{cast.enterprise.pk}"
    ).exists()
    # Without a program, an application goes to the default program.
    city_grant = grant_in(cast, DEFAULT_PROGRAM, "C-1")
    assert city_grant.year_id == city.pk


def test_the_same_contract_may_apply_once_per_program(cast, both):
    submit(cast, number="SAME", program=DISTRICT)
    with pytest.raises(DuplicateContract):
        submit(cast, number="SAME", program=DISTRICT)
    assert Application.objects.filter(contract_number="SAME").count() == 1


def test_a_redemption_is_sealed_in_its_grants_program_year_chain(cast, both):
    _, district = both
    grant = grant_in(cast, DISTRICT, "D-2")
    redemption = redemption_create(
        grant=grant.pk,
        bill_number="B-1",
        bill_amount_fen=10_000,
        actor=cast.clerk,
        capture=True,
        now=IN_YEAR,
        **invoice(cast.clerk),
    )
    transfer = Transfer.objects.get(key=f"redemption:{redemption.pk}:capture")
    assert transfer.chain == district.chain and transfer.debit_account_id == grant.account_id
    ledger_seal()
    run = audit_execute(run_id=audit_run_create().pk)
    assert run.status == "passed", [check for check in run.checks if not check["ok"]]


def test_the_reset_of_one_program_leaves_the_other_open(cast, both):
    city, district = both
    grant_in(cast, DISTRICT, "D-3")
    report = annual_reset(year=YEAR, now=year_end(YEAR), program=DISTRICT)
    assert report.program == DISTRICT and report.grants_expired == 1
    assert program_year_get(YEAR, DISTRICT).status == "closed"
    assert program_year_get(YEAR + 1, DISTRICT).status == "open"
    assert program_year_get(YEAR).status == "open"  # The city's year runs on.
    assert not ProgramYear.objects.filter(program_id=DEFAULT_PROGRAM, year=YEAR + 1).exists()
    assert balance(books.lapsed_code(district)).credits_posted == 30_000
    assert balance(books.lapsed_code(city)).credits_posted == 0


def test_bad_programs_are_refused_and_nothing_is_written(cast, both):
    with pytest.raises(ValidationFailed) as unknown:
        submit(cast, number="X-1", program="no-such-program")
    assert "program" in unknown.value.errors
    with pytest.raises(NotFound):
        program_year_get(YEAR, "no-such-program")
    with pytest.raises(InvalidState):  # The same year of the same program twice.
        program_year_create(year=YEAR, actor=cast.admin, program=DISTRICT)
    assert program_year_open(year=YEAR, actor=cast.admin, program=DISTRICT).status == "open"  # Twice: no change.
    assert Transfer.objects.filter(reason="year_open", chain=f"{DISTRICT}:{YEAR}").count() == 1
    program_close(slug=DISTRICT, actor=cast.admin)
    with pytest.raises(ProgramClosed):
        submit(cast, number="X-2", program=DISTRICT)
    with pytest.raises(ProgramClosed):
        program_year_create(year=YEAR + 1, actor=cast.admin, program=DISTRICT)
    assert not Application.objects.filter(contract_number__startswith="X-").exists()


def test_each_fund_settles_its_own_redemptions(cast, both):
    from coupons.selectors import program_year_figures
    from coupons.services.settlements import settlement_create
    from tests.controls import settlement_pay

    city_grant, district_grant = grant_in(cast, DEFAULT_PROGRAM, "C-9"), grant_in(cast, DISTRICT, "D-9")
    for grant, bill in ((city_grant, "CB-1"), (district_grant, "DB-1")):
        redemption_create(
            grant=grant, bill_number=bill, bill_amount_fen=10_000, actor=cast.clerk, capture=True, now=IN_YEAR,
            **invoice(cast.clerk),
        )  # fmt: skip

    district_settlement = settlement_create(provider=cast.provider, actor=cast.finance, program=DISTRICT)
    assert (district_settlement.program_id, district_settlement.total_fen) == (DISTRICT, 3_000)
    assert {r.grant_id for r in district_settlement.redemptions.all()} == {district_grant.pk}
    with pytest.raises(InvalidState):  # The district has nothing more; the city's bill is not its to pay.
        settlement_create(provider=cast.provider, actor=cast.finance, program=DISTRICT)
    city_settlement = settlement_create(provider=cast.provider, actor=cast.finance)
    assert (city_settlement.program_id, city_settlement.total_fen) == (DEFAULT_PROGRAM, 3_000)

    settlement_pay(settlement=district_settlement, actor=cast.finance, bank_reference="BJ-0001")
    assert program_year_figures(year=YEAR, program=DISTRICT).settled_fen == 3_000
    assert program_year_figures(year=YEAR).settled_fen == 0  # The city's fund has paid nothing yet.


def test_the_api_settles_per_program_on_the_programs_path(cast, both, client):
    grant = grant_in(cast, DISTRICT, "D-10")
    redemption_create(
        grant=grant, bill_number="DB-2", bill_amount_fen=10_000, actor=cast.clerk, capture=True, now=IN_YEAR,
        **invoice(cast.clerk),
    )  # fmt: skip
    client.force_login(cast.finance)
    body = {"provider": cast.provider.pk}

    nothing = client.post("/api/v1/settlements/", body, content_type="application/json")  # The city's fund.
    assert nothing.status_code == 409, nothing.content
    unknown = client.post("/api/v1/programs/no-such-program/settlements/", body, content_type="application/json")
    assert unknown.status_code == 404
    made = client.post(f"/api/v1/programs/{DISTRICT}/settlements/", body, content_type="application/json")
    assert made.status_code == 201, made.content
    assert (made.json()["program"], made.json()["total_fen"]) == (DISTRICT, 3_000)
    listed = client.get(f"/api/v1/programs/{DISTRICT}/settlements/").json()["results"]
    assert [row["id"] for row in listed] == [made.json()["id"]]
    assert client.get(f"/api/v1/settlements/?program={DEFAULT_PROGRAM}").json()["results"] == []


def test_a_relaxed_cap_needs_the_enterprise_in_the_programs_region(cast, year):
    """Found from outside: a district raised the cap of an enterprise registered outside it."""
    from accounts.selectors import uscc_division
    from accounts.services import enterprise_flags_declare, enterprise_verify
    from coupons.errors import NotEligible
    from coupons.services.years import cap_override_request

    enterprise_flags_declare(enterprise=cast.enterprise, actor=cast.member, foundation_model_developer=True)
    enterprise_verify(enterprise=cast.enterprise, actor=cast.reviewer, flags={"foundation_model_developer": True})
    cast.enterprise.refresh_from_db()
    elsewhere = "330199" if uscc_division(cast.enterprise.uscc) != "330199" else "330198"
    district_program()
    program_year_create(year=YEAR, actor=cast.admin, program=DISTRICT, region_division_prefixes=[elsewhere])
    program_year_open(year=YEAR, actor=cast.admin, program=DISTRICT)
    asked = {"year": YEAR, "enterprise": cast.enterprise, "cap_fen": CAP_FEN + 1, "reason": "Trains a model."}

    with pytest.raises(NotEligible) as refused:
        cap_override_request(requester=cast.reviewer, program=DISTRICT, **asked)
    assert "outside" in str(refused.value.detail)
    assert cap_override_request(requester=cast.reviewer, **asked).status == "pending"  # Its own city may.
