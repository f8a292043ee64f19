"""An enterprise registers from the portal: pending until verified, its member signed in; every
mistake said in the person's language with nothing written."""

from collections.abc import Callable

import pytest
from django.test import Client

from accounts.models import Enterprise, User
from coupons.models import ProgramYear
from tests.coupons.conftest import Cast
from tests.factories import valid_uscc

PASSWORD = "a long and unusual passphrase 7"


def form(**changes: object) -> dict[str, object]:
    return {
        "name": "Xixi Vision Co., Ltd.",
        "uscc": valid_uscc().lower(),  # typed in lower case: the form upper-cases it
        "username": "xixi-finance",
        "email": "finance@xixi.example",
        "password": PASSWORD,
        "password_again": PASSWORD,
    } | changes


def test_an_enterprise_registers_and_waits_for_verification(year: ProgramYear):
    client = Client()
    data = form()
    response = client.post("/register/", data)
    assert response.status_code == 302 and response["Location"] == "/enterprise/"
    enterprise = Enterprise.objects.get(name="Xixi Vision Co., Ltd.")
    assert enterprise.status == "pending" and enterprise.uscc == str(data["uscc"]).upper()
    user = User.objects.get(username="xixi-finance")
    assert user.enterprise_id == enterprise.pk and user.check_password(PASSWORD) and not user.roles
    overview = client.get("/enterprise/").content.decode()
    assert "/apply/" not in overview.split("<main", 1)[1]  # no Apply button while pending
    assert client.get("/apply/").status_code == 200  # the page opens, but the service refuses a pending enterprise


@pytest.mark.parametrize(
    ("changes", "field", "english"),
    [
        (
            {"uscc": "91330100MA2H0000IO"},
            "uscc",
            "A credit code uses digits and capital letters other than I, O, S, V and Z.",
        ),
        ({"uscc": "9133"}, "uscc", "A credit code has exactly 18 characters."),
        ({"password_again": "something else 123"}, "password_again", "The two passwords differ."),
        ({"password": "12345678", "password_again": "12345678"}, "password", "This password is too common."),
        ({"has_registered_model": "on"}, "model_filing_number", "A registered model needs its CAC filing number."),
        ({"username": "bad name!"}, "username", "A username holds only ASCII letters"),
        ({"username": "\u0430dmin"}, "username", "A username holds only ASCII letters"),  # a Cyrillic a
        ({"email": "not-an-email"}, "email", "Enter a valid email address."),
    ],
)
def test_mistakes_are_said_in_the_persons_language_and_nothing_is_written(
    changes: dict[str, object], field: str, english: str, year: ProgramYear, db_snapshot: Callable[[], object]
):
    before = db_snapshot()
    for language in ("en", "zh-hans"):
        client = Client()
        client.cookies["django_language"] = language
        response = client.post("/register/", form(**changes))
        body = response.content.decode()
        assert response.status_code == 400
        assert f'id="id_{field}_errors"' in body
        if language == "en":
            assert english in body.replace("&#x27;", "'")
        assert 'value="Xixi Vision Co., Ltd."' in body and PASSWORD not in body  # input kept, passwords not echoed
    assert db_snapshot() == before


def test_a_wrong_check_character_names_the_right_one(year: ProgramYear):
    good = valid_uscc()
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    client = Client()
    client.cookies["django_language"] = "en"
    body = client.post("/register/", form(uscc=bad)).content.decode()
    assert f"The check character is wrong: GB 32100-2015 gives {good[-1]} here." in body


def test_a_taken_username_or_credit_code_is_refused(cast: Cast, year: ProgramYear):
    client = Client()
    client.cookies["django_language"] = "en"
    body = client.post("/register/", form(username=cast.member.username.upper())).content.decode()
    assert "This username is taken." in body
    fullwidth = "".join(chr(ord(letter) + 0xFEE0) for letter in cast.member.username)  # NFKC: the same name
    body = client.post("/register/", form(username=fullwidth)).content.decode()
    assert "This username is taken." in body
    body = client.post("/register/", form(uscc=cast.enterprise.uscc)).content.decode()
    assert "An organisation with this credit code is already registered." in body


def test_a_signed_in_person_is_sent_home(cast: Cast, year: ProgramYear, as_user: Callable[..., Client]):
    response = as_user(cast.member).get("/register/")
    assert response.status_code == 302 and response["Location"] == "/"
