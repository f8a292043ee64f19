"""Security headers: a strict Content-Security-Policy everywhere (Swagger UI's page widened for its
styles only), no inline style or script left in a template, and `Cache-Control: no-store` on every
answer that carries a secret or someone's figures."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from coupons.services.redemptions import redemption_create
from tests.api.conftest import PASSWORD, signed_in
from tests.controls import settlement_create
from tests.coupons.conftest import make_cast, open_year
from tests.evidence import invoice
from tests.portal.conftest import client_of, walk_to_grant

pytestmark = pytest.mark.django_db
TEMPLATES = Path(settings.BASE_DIR) / "templates"


def directives(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {name: values for name, *values in (part.split() for part in header.split(";") if part.strip())}


def no_store(response) -> bool:
    return "no-store" in response.get("Cache-Control", "")


@pytest.fixture
def cast(db):
    return make_cast()


@pytest.fixture
def year(cast):
    return open_year(cast.admin)


def test_every_page_has_the_strict_policy(cast, year):
    for response in (Client().get("/login/"), client_of(cast.member).get("/enterprise/"), Client().get("/status/")):
        policy = directives(response)
        assert policy["default-src"] == ["'self'"]
        assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"]
        assert (policy["frame-ancestors"], policy["form-action"]) == (["'none'"], ["'self'"])
        assert (policy["base-uri"], policy["object-src"]) == (["'none'"], ["'none'"])
        assert "unsafe" not in response["Content-Security-Policy"]


def test_the_api_docs_widen_styles_and_images_only(client):
    policy = directives(client.get("/api/docs/"))
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'", "'unsafe-inline'"]
    assert policy["img-src"] == ["'self'", "data:"]
    assert policy["frame-ancestors"] == ["'none'"]


def test_no_template_has_an_inline_style_or_script():
    offending = []
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text()
        if re.search(r"\sstyle\s*=|<style|<script(?![^>]*\bsrc=)|\son[a-z]+\s*=", text):
            offending.append(template.name)
    assert offending == []


def test_the_token_and_a_new_api_keys_answers_are_not_stored(cast, year):
    token = Client().post(
        "/api/v1/auth/token/", {"username": cast.clerk.username, "password": PASSWORD}, content_type="application/json"
    )
    assert token.status_code == 200 and no_store(token)
    keys = f"/api/v1/providers/{cast.provider.pk}/api-keys/"
    key = signed_in(cast.clerk).post(keys, {"name": "billing"}, format="json")
    assert key.status_code == 201 and no_store(key)
    page = client_of(cast.clerk).post("/api-keys/", {"name": "billing-2"})
    assert page.status_code == 200 and no_store(page)


def test_settlements_exports_dashboard_stats_and_me_are_not_stored(cast, year):
    grant = walk_to_grant(cast)
    redemption_create(
        grant=grant, bill_number="B-1", bill_amount_fen=10_000, actor=cast.clerk, capture=True, **invoice(cast.clerk)
    )
    settlement = settlement_create(provider=cast.provider, actor=cast.finance)
    api = signed_in(cast.finance)
    portal = client_of(cast.finance)
    answers = {
        "settlements": api.get("/api/v1/settlements/"),
        "settlement": api.get(f"/api/v1/settlements/{settlement.pk}/"),
        "lines": api.get(f"/api/v1/settlements/{settlement.pk}/lines.csv"),
        "stats": api.get("/api/v1/stats/pool/"),
        "me": api.get("/api/v1/me/"),
        "portal settlement": portal.get(f"/settlements/{settlement.pk}/"),
        "portal lines": portal.get(f"/settlements/{settlement.pk}/lines.csv"),
        "dashboard": portal.get("/dashboard/"),
        "export": portal.get("/exports/?what=grants&start=2026-01-01&end=2026-12-31&file_format=csv"),
    }
    assert {name: (r.status_code, no_store(r)) for name, r in answers.items()} == {
        name: (200, True) for name in answers
    }


def test_what_anyone_may_read_is_left_cacheable(cast, year):
    assert not no_store(Client().get("/public/awards/"))
