"""Simplified Chinese first with an English switch, every string translated; sign-in with a
throttle; CSRF on every form; nothing secret cached."""

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import Client
from django.utils import translation

from coupons.models import Application, ProgramYear
from tests.coupons.conftest import Cast
from tests.factories import UserFactory

PASSWORD = "correct horse battery staple"  # tests.factories.UserFactory's password
LOCALE = Path(settings.BASE_DIR) / "locale" / "zh_Hans" / "LC_MESSAGES"


def test_the_portal_is_chinese_by_default_whatever_the_browser_asks(year: ProgramYear):
    body = Client(HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9").get("/login/").content.decode()
    assert '<html lang="zh-hans">' in body and "登录" in body


def test_the_switch_sets_english_and_back(year: ProgramYear):
    client = Client()
    response = client.post("/i18n/setlang/", {"language": "en", "next": "/public/awards/"})
    assert response.status_code == 302 and response["Location"] == "/public/awards/"
    body = client.get("/public/awards/").content.decode()
    assert '<html lang="en">' in body and "Public notice of computing-power coupon awards" in body
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/public/awards/"})
    assert '<html lang="zh-hans">' in client.get("/public/awards/").content.decode()


def test_an_unknown_language_cookie_falls_back_to_chinese(year: ProgramYear):
    client = Client()
    client.cookies["django_language"] = "fr"
    assert '<html lang="zh-hans">' in client.get("/login/").content.decode()


def test_every_message_is_translated_and_the_compiled_catalogue_is_current(tmp_path: Path):
    po, mo = LOCALE / "django.po", LOCALE / "django.mo"
    msgattrib = shutil.which("msgattrib")
    msgfmt = shutil.which("msgfmt")
    assert msgattrib and msgfmt, "gettext tools are installed by make/.ci/run"
    untranslated = subprocess.run(
        [msgattrib, "--untranslated", "--no-obsolete", str(po)], capture_output=True, text=True, check=True
    )
    fuzzy = subprocess.run(
        [msgattrib, "--only-fuzzy", "--no-obsolete", str(po)], capture_output=True, text=True, check=True
    )
    # Only the header (msgid "") may be empty.
    assert untranslated.stdout.count("msgid ") <= 1, untranslated.stdout[:2000]
    assert "msgid " not in fuzzy.stdout, fuzzy.stdout[:2000]
    compiled = tmp_path / "django.mo"
    subprocess.run([msgfmt, "--check", "-o", str(compiled), str(po)], check=True)
    assert compiled.read_bytes() == mo.read_bytes(), (
        "run: msgfmt -o locale/zh_Hans/LC_MESSAGES/django.mo locale/zh_Hans/LC_MESSAGES/django.po"
    )


def test_every_template_string_is_in_the_catalogue():
    """makemessages would add nothing: every {% translate %} in the portal's templates is in the .po."""
    import re

    msgids = set()
    for entry in (LOCALE / "django.po").read_text().split("\n\n"):
        # A msgid may run over several quoted lines: join them.
        found = re.search(r'^msgid ((?:".*"\n?)+)', entry, flags=re.MULTILINE)
        if found:
            msgids.add("".join(re.findall(r'"(.*)"', found.group(1))).replace('\\"', '"'))
    missing = []
    for template in (Path(settings.BASE_DIR) / "templates").rglob("*.html"):
        for text in re.findall(r'{% translate "([^"]+)"', template.read_text()):
            if text not in msgids:
                missing.append((template.name, text))
    assert not missing


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_a_wrong_password_is_said_in_the_persons_language(language: str, year: ProgramYear):
    user = UserFactory()
    client = Client()
    client.cookies["django_language"] = language
    body = client.post("/login/", {"username": user.username, "password": "wrong"}).content.decode()
    with translation.override(language):
        expected = translation.gettext("The username, password or one-time code is wrong.")
    assert expected in body
    assert f'value="{user.username}"' in body


def test_sign_in_and_out_with_the_real_forms(cast: Cast, year: ProgramYear):
    client = Client(enforce_csrf_checks=True)
    page = client.get("/login/?next=/apply/")
    token = page.cookies["csrftoken"].value
    response = client.post(
        "/login/",
        {"username": cast.member.username, "password": PASSWORD, "next": "/apply/", "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302 and response["Location"] == "/apply/"
    assert client.get("/apply/").status_code == 200
    token = client.cookies["csrftoken"].value
    assert client.post("/logout/", {"csrfmiddlewaretoken": token}).status_code == 302
    assert client.get("/apply/").status_code == 302


def test_failed_sign_ins_are_throttled(year: ProgramYear, settings: Any):
    settings.THROTTLE_LOGIN = "3/minute"
    cache.clear()
    user = UserFactory()
    client = Client()
    for _ in range(3):
        client.post("/login/", {"username": user.username, "password": "wrong"})
    body = client.post("/login/", {"username": user.username, "password": PASSWORD}).content.decode()
    with translation.override("zh-hans"):
        expected = translation.gettext("Too many failed sign-ins. Try again in %(seconds)s seconds.").split("%")[0]
    assert expected in body
    assert "_auth_user_id" not in client.session
    cache.clear()


def test_a_form_without_its_csrf_token_changes_nothing(
    cast: Cast, year: ProgramYear, db_snapshot: Callable[[], object]
):
    client = Client(enforce_csrf_checks=True)
    client.force_login(cast.member)
    before = db_snapshot()
    form = {
        "provider": cast.provider.pk,
        "contract_number": "C-1",
        "contract_fee": "1000",
        "compute_source": "domestic",
        "purpose": "training",
    }
    response = client.post("/apply/", form)
    assert response.status_code == 403
    assert db_snapshot() == before and not Application.objects.exists()


def test_every_form_on_every_page_carries_a_csrf_token(cast: Cast, year: ProgramYear, as_user: Callable[..., Client]):
    import re

    pages = {
        cast.member: ["/enterprise/", "/apply/"],
        cast.clerk: ["/provider/", "/redeem/", "/api-keys/", "/settlements/"],
        cast.admin: ["/providers/", "/enterprises/", "/cap-overrides/", "/settlements/", "/audits/"],
    }
    checked = 0
    for user, urls in pages.items():
        client = as_user(user)
        for url in urls:
            body = client.get(url).content.decode()
            for form in re.findall(r"<form[^>]*>.*?</form>", body, flags=re.DOTALL):
                if 'method="post"' in form:
                    assert "csrfmiddlewaretoken" in form, (url, form[:200])
                    checked += 1
    assert checked >= 20


def test_signed_in_pages_are_not_stored_by_shared_caches(cast: Cast, year: ProgramYear, as_user: Callable[..., Client]):
    response = as_user(cast.member).get("/enterprise/")
    assert "Cookie" in response["Vary"]
