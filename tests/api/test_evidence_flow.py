"""Contracts and invoices over HTTP: an application cites its contract, a bill its invoice, each party
reads what the other cited and nobody else does, the reviewer says what they checked, and an invoice
is used once however its number is written."""

import itertools

import pytest
import yaml

from coupons.models import Invoice, Redemption
from tests.api.conftest import assert_problem, signed_in
from tests.coupons.conftest import YEAR, Cast, grant_for
from tests.evidence import contract_ids, document, invoice_ids, invoice_number, pdf_bytes
from tests.factories import EnterpriseFactory, ProviderFactory, UserFactory

pytestmark = pytest.mark.django_db

_keys = itertools.count(1)


def submit_body(cast, **changes):
    return {
        "provider": cast.provider.pk,
        "contract_number": f"HZ-E-{next(_keys)}",
        "contract_fee_fen": 1_000_000,
        "compute_source": "domestic",
        "purpose": "training",
        **contract_ids(cast.member, YEAR),
        **changes,
    }


def redeem(client, body, key=None):
    return client.post("/api/v1/redemptions/", body, format="json", HTTP_IDEMPOTENCY_KEY=key or f"k-{next(_keys)}")


def redeem_body(cast, grant, **changes):
    return {
        "grant": grant.pk,
        "bill_number": f"B-{next(_keys)}",
        "bill_amount_fen": 100_000,
        **invoice_ids(cast.clerk),
        **changes,
    }


def upload(client, kind, data=None, name="file.pdf"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    file = SimpleUploadedFile(name, data or pdf_bytes(kind), content_type="application/pdf")
    response = client.post("/api/v1/documents/", {"file": file, "kind": kind}, format="multipart")
    assert response.status_code in (200, 201), response.content
    return response.json()


# --- Applications ---------------------------------------------------------------------------------------


def test_an_application_uploaded_and_cited_over_http_shows_its_documents(cast, year):
    member = signed_in(cast.member)
    contract_doc = upload(member, "contract")
    usage = upload(member, "delivery_proof")

    created = member.post(
        "/api/v1/applications/",
        submit_body(
            cast,
            contract_document=contract_doc["id"],
            contract_signed_on=f"{YEAR}-02-03",
            contract_term_months=6,
            documents=[usage["id"]],
        ),
        format="json",
    )

    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["contract_document"], body["contract_signed_on"], body["contract_term_months"]) == (
        contract_doc["id"],
        f"{YEAR}-02-03",
        6,
    )
    assert body["filing_certificate_document"] is None and body["evidence_checked"] == []
    assert body["documents"] == [
        {
            "id": contract_doc["id"],
            "kind": "contract",
            "sha256": contract_doc["sha256"],
            "role": "contract",
            "shared_with_other_enterprise": None,
        },
        {
            "id": usage["id"],
            "kind": "delivery_proof",
            "sha256": usage["sha256"],
            "role": "delivery_proof",
            "shared_with_other_enterprise": None,
        },
    ]
    # The computing center (the other party) reads it as the enterprise does.
    assert signed_in(cast.clerk).get(f"/api/v1/applications/{body['id']}/").json()["documents"] == body["documents"]


@pytest.mark.parametrize("field", ["contract_document", "contract_signed_on", "contract_term_months"])
def test_an_application_without_its_contract_is_400_naming_the_field(field, cast, year, db_snapshot):
    body = submit_body(cast)
    del body[field]
    before = db_snapshot()
    problem = assert_problem(
        signed_in(cast.member).post("/api/v1/applications/", body, format="json"), 400, "validation_error"
    )
    assert field in problem["errors"]
    assert db_snapshot() == before


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"contract_term_months": 13}, "contract_term_months"),
        ({"contract_term_months": 0}, "contract_term_months"),
        ({"contract_term_months": "12"}, "contract_term_months"),
        ({"contract_signed_on": f"{YEAR - 1}-12-31"}, "contract_signed_on"),
        ({"contract_signed_on": "2999-01-01"}, "contract_signed_on"),
        ({"contract_signed_on": "yesterday"}, "contract_signed_on"),
        ({"documents": "1"}, "documents"),
        ({"documents": list(range(1, 22))}, "documents"),
    ],
)
def test_a_contract_outside_the_policy_is_400(changes, field, cast, year, db_snapshot):
    body = submit_body(cast, **changes)
    before = db_snapshot()
    problem = assert_problem(
        signed_in(cast.member).post("/api/v1/applications/", body, format="json"), 400, "validation_error"
    )
    assert field in problem["errors"]
    assert db_snapshot() == before


def test_an_enterprise_cannot_cite_another_organisations_document(cast, year, db_snapshot):
    other_enterprise = UserFactory(enterprise=EnterpriseFactory())
    bodies = [
        submit_body(cast, contract_document=document(other_enterprise, "contract").pk),
        submit_body(cast, contract_document=document(cast.clerk, "contract").pk),
        submit_body(cast, documents=[document(other_enterprise, "other").pk]),
    ]
    before = db_snapshot()
    for body in bodies:
        # As if the document did not exist: 404 on the field, the same words either way.
        assert_problem(signed_in(cast.member).post("/api/v1/applications/", body, format="json"), 404, "not_found")
    assert db_snapshot() == before


def test_a_document_id_that_names_nothing_is_404_on_its_field(cast, year, db_snapshot):
    before = db_snapshot()
    problem = assert_problem(
        signed_in(cast.member).post(
            "/api/v1/applications/", submit_body(cast, filing_certificate_document=10**9), format="json"
        ),
        404,
        "not_found",
    )
    assert list(problem["errors"]) == ["filing_certificate_document"], problem
    assert db_snapshot() == before


def test_the_review_says_which_documents_were_checked(cast, year, db_snapshot):
    created = signed_in(cast.member).post("/api/v1/applications/", submit_body(cast), format="json").json()
    pk = created["id"]
    signed_in(cast.clerk).post(f"/api/v1/applications/{pk}/confirm/")
    reviewer = signed_in(cast.reviewer)
    url = f"/api/v1/applications/{pk}/review/"
    not_cited = document(cast.member, "other").pk
    before = db_snapshot()
    for body in (
        {"recommended_fen": 1_000},
        {"recommended_fen": 1_000, "evidence_checked": []},
        {"recommended_fen": 1_000, "evidence_checked": [created["contract_document"], not_cited]},
        {"recommended_fen": 1_000, "evidence_checked": [str(created["contract_document"])]},
    ):
        problem = assert_problem(reviewer.post(url, body, format="json"), 400, "validation_error")
        assert any(name.startswith("evidence_checked") for name in problem["errors"]), problem
    assert db_snapshot() == before

    reviewed = reviewer.post(
        url, {"recommended_fen": 1_000, "evidence_checked": [created["contract_document"]]}, format="json"
    )

    assert reviewed.status_code == 200, reviewed.content
    assert (reviewed.json()["status"], reviewed.json()["evidence_checked"]) == (
        "reviewed",
        [created["contract_document"]],
    )


def test_the_same_bytes_cited_for_another_enterprise_are_flagged_in_the_read_shape(cast, year):
    data = pdf_bytes("the same contract")
    first = (
        signed_in(cast.member)
        .post(
            "/api/v1/applications/",
            submit_body(cast, contract_document=upload(signed_in(cast.member), "contract", data)["id"]),
            format="json",
        )
        .json()
    )
    # Applicants never learn what another enterprise filed: the flag is the reviewer's.
    assert first["documents"][0]["shared_with_other_enterprise"] is None

    other = EnterpriseFactory()
    other_member = UserFactory(enterprise=other)
    theirs = upload(signed_in(other_member), "contract", data)
    assert theirs["sha256"] == first["documents"][0]["sha256"] and theirs["id"] != first["contract_document"]
    second = signed_in(other_member).post(
        "/api/v1/applications/",
        {**submit_body(cast), **contract_ids(other_member, YEAR), "contract_document": theirs["id"]},
        format="json",
    )
    assert second.status_code == 201, second.content

    assert second.json()["documents"][0]["shared_with_other_enterprise"] is None
    assert (
        signed_in(cast.member)
        .get(f"/api/v1/applications/{first['id']}/")
        .json()["documents"][0]["shared_with_other_enterprise"]
        is None
    )
    reviewer = signed_in(cast.reviewer)
    for pk in (first["id"], second.json()["id"]):
        assert (
            reviewer.get(f"/api/v1/applications/{pk}/").json()["documents"][0]["shared_with_other_enterprise"] is True
        )


# --- Redemptions --------------------------------------------------------------------------------------------


def test_a_bill_carries_its_invoice_and_the_enterprise_downloads_it(cast, year):
    grant = grant_for(cast)
    clerk = signed_in(cast.clerk)
    invoice = upload(clerk, "invoice")

    made = redeem(
        clerk,
        redeem_body(
            cast,
            grant,
            invoice_number="0330 0210 0611/1234 5678",
            invoice_document=invoice["id"],
            invoice_amount_fen=100_500,
        ),
    )

    assert made.status_code == 201, made.content
    body = made.json()
    assert (body["invoice_number"], body["invoice_document"], body["invoice_amount_fen"]) == (
        "033002100611-12345678",
        invoice["id"],
        100_500,
    )
    assert signed_in(cast.member).get(f"/api/v1/redemptions/{body['id']}/").json()["invoice_document"] == invoice["id"]
    downloaded = signed_in(cast.member).get(f"/api/v1/documents/{invoice['id']}/content/")
    assert downloaded.status_code == 200 and b"".join(downloaded.streaming_content).startswith(b"%PDF-")


def test_the_other_party_downloads_what_it_is_party_to_and_a_third_party_gets_404(cast, year):
    grant = grant_for(cast)
    contract_id = grant.application.contract_document_id
    invoice_id = redeem(signed_in(cast.clerk), redeem_body(cast, grant)).json()["invoice_document"]
    strangers = [UserFactory(enterprise=EnterpriseFactory()), UserFactory(provider=ProviderFactory())]

    for document_id in (contract_id, invoice_id):
        for party in (cast.member, cast.clerk, cast.reviewer):
            assert signed_in(party).get(f"/api/v1/documents/{document_id}/content/").status_code == 200
        for stranger in strangers:
            assert_problem(signed_in(stranger).get(f"/api/v1/documents/{document_id}/content/"), 404, "not_found")
            assert_problem(signed_in(stranger).get(f"/api/v1/documents/{document_id}/"), 404, "not_found")


@pytest.mark.parametrize("number", ["12345", "0330021006-1234567", "INV-2026-0001", "２６３３"])
def test_a_bad_invoice_number_is_400_invalid_invoice_number(number, cast, year, db_snapshot):
    grant = grant_for(cast)
    body = redeem_body(cast, grant, invoice_number=number)
    before = db_snapshot()
    assert_problem(redeem(signed_in(cast.clerk), body), 400, "invalid_invoice_number")
    assert db_snapshot() == before


@pytest.mark.parametrize("missing", ["invoice_number", "invoice_document"])
def test_a_bill_without_its_invoice_is_400(missing, cast, year, db_snapshot):
    grant = grant_for(cast)
    body = redeem_body(cast, grant)
    del body[missing]
    before = db_snapshot()
    problem = assert_problem(redeem(signed_in(cast.clerk), body), 400, "validation_error")
    assert missing in problem["errors"]
    assert db_snapshot() == before


def test_an_invoice_below_the_bill_is_400_on_its_amount(cast, year, db_snapshot):
    grant = grant_for(cast)
    body = redeem_body(cast, grant, bill_amount_fen=100_000, invoice_amount_fen=99_999)
    before = db_snapshot()
    problem = assert_problem(redeem(signed_in(cast.clerk), body), 400, "validation_error")
    assert problem["errors"]["invoice_amount_fen"] == [
        "The invoice must cover the bill amount: it is for 99999 fen, the bill 100000 fen."
    ]
    assert db_snapshot() == before


def test_a_provider_cannot_cite_an_enterprises_document_or_another_providers(cast, year, db_snapshot):
    grant = grant_for(cast)
    bodies = [
        redeem_body(cast, grant, invoice_document=document(cast.member, "invoice").pk),
        redeem_body(cast, grant, invoice_document=document(UserFactory(provider=ProviderFactory()), "invoice").pk),
    ]
    before = db_snapshot()
    for body in bodies:
        problem = assert_problem(redeem(signed_in(cast.clerk), body), 404, "not_found")
        assert list(problem["errors"]) == ["invoice_document"]
    assert db_snapshot() == before


def test_an_invoice_is_used_once_across_providers_also_in_a_batch(cast, year, db_snapshot):
    grant = grant_for(cast)
    number = invoice_number()
    assert redeem(signed_in(cast.clerk), redeem_body(cast, grant, invoice_number=number)).status_code == 201
    other_clerk = UserFactory(provider=ProviderFactory())
    other = Cast(**{**cast.__dict__, "provider": other_clerk.provider, "clerk": other_clerk})
    other_grant = grant_for(other, fee_fen=200_000)
    spelled_otherwise = " ".join(number[i : i + 4] for i in range(0, 20, 4))
    single = redeem_body(other, other_grant, invoice_number=spelled_otherwise)
    item = {"idempotency_key": "dup-invoice", **redeem_body(other, other_grant, invoice_number=number)}
    before = db_snapshot()

    assert_problem(redeem(signed_in(other_clerk), single), 409, "duplicate_invoice")
    batch = signed_in(other_clerk).post("/api/v1/redemptions/batch/", {"items": [item]}, format="json")

    assert batch.status_code == 200, batch.content
    assert [(r["status"], r["error"]["code"]) for r in batch.json()["results"]] == [(409, "duplicate_invoice")]
    assert db_snapshot() == before
    assert Invoice.objects.filter(number=number).count() == 1


def test_a_batch_item_carries_its_invoice_and_a_replay_replays(cast, year):
    grant = grant_for(cast)
    clerk = signed_in(cast.clerk)
    items = [
        {"idempotency_key": "i-1", **redeem_body(cast, grant)},
        {"idempotency_key": "i-2", **redeem_body(cast, grant, invoice_number="bad")},
    ]

    first = clerk.post("/api/v1/redemptions/batch/", {"items": items}, format="json").json()["results"]
    again = clerk.post("/api/v1/redemptions/batch/", {"items": items}, format="json").json()["results"]

    assert [(r["status"], r.get("error", {}).get("code")) for r in first] == [
        (201, None),
        (400, "invalid_invoice_number"),
    ]
    assert first[0]["redemption"]["invoice_number"] == items[0]["invoice_number"]
    assert [r["replayed"] for r in again] == [True, True]
    assert again[0]["redemption"] == first[0]["redemption"]
    assert Redemption.objects.count() == 1


def test_a_single_redemption_replays_with_its_invoice(cast, year):
    grant = grant_for(cast)
    clerk = signed_in(cast.clerk)
    body = redeem_body(cast, grant)
    first = redeem(clerk, body, key="same")
    again = redeem(clerk, body, key="same")
    assert (first.status_code, again.status_code, again["Idempotent-Replayed"]) == (201, 201, "true")
    assert again.json() == first.json()
    assert Invoice.objects.count() == 1
    other_invoice = {**body, **invoice_ids(cast.clerk)}
    assert_problem(redeem(clerk, other_invoice, key="same"), 409, "idempotency_key_reused")


def test_the_schema_describes_the_new_fields(client):
    components = yaml.safe_load(client.get("/api/schema/").content)["components"]["schemas"]
    assert {"invoice_number", "invoice_document"} <= set(components["RedeemRequestRequest"]["required"])
    assert {"contract_document", "contract_signed_on", "contract_term_months"} <= set(
        components["SubmitRequestRequest"]["required"]
    )
    assert "evidence_checked" in components["ReviewRequestRequest"]["required"]
    assert {"documents", "evidence_checked", "contract_document"} <= set(components["Application"]["properties"])
    assert {"invoice_number", "invoice_document", "invoice_amount_fen"} <= set(components["Redemption"]["properties"])
