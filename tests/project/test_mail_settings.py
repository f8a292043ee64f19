"""Mail settings come from EMAIL_URL or the EMAIL_* variables; development prints, production sends."""

import pytest

from config.env import CONSOLE_MAIL_BACKEND, SMTP_MAIL_BACKEND, mail_settings
from tests.project.test_settings import PRODUCTION_ENV, manage

MAIL_VARIABLES = ("EMAIL_URL", "EMAIL_BACKEND", "EMAIL_HOST", "EMAIL_PORT", "EMAIL_HOST_USER", "EMAIL_HOST_PASSWORD")


@pytest.fixture(autouse=True)
def no_mail_environment(monkeypatch):
    for name in (*MAIL_VARIABLES, "EMAIL_USE_TLS", "EMAIL_USE_SSL"):
        monkeypatch.delenv(name, raising=False)


def test_an_email_url_names_the_server_and_its_credentials(monkeypatch):
    monkeypatch.setenv("EMAIL_URL", "smtp+tls://alerts:p%40ss@mail.example.org:587")
    assert mail_settings(default_backend=CONSOLE_MAIL_BACKEND) == {
        "EMAIL_BACKEND": SMTP_MAIL_BACKEND,
        "EMAIL_HOST": "mail.example.org",
        "EMAIL_PORT": 587,
        "EMAIL_HOST_USER": "alerts",
        "EMAIL_HOST_PASSWORD": "p@ss",
        "EMAIL_USE_TLS": True,
        "EMAIL_USE_SSL": False,
    }


def test_the_email_variables_one_by_one(monkeypatch):
    monkeypatch.setenv("EMAIL_HOST", "relay.internal")
    monkeypatch.setenv("EMAIL_PORT", "2525")
    monkeypatch.setenv("EMAIL_USE_TLS", "1")
    mail = mail_settings(default_backend=SMTP_MAIL_BACKEND)
    assert (mail["EMAIL_BACKEND"], mail["EMAIL_HOST"], mail["EMAIL_PORT"], mail["EMAIL_USE_TLS"]) == (
        SMTP_MAIL_BACKEND,
        "relay.internal",
        2525,
        True,
    )


def test_without_mail_settings_development_prints_and_production_sends():
    assert mail_settings(default_backend=CONSOLE_MAIL_BACKEND)["EMAIL_BACKEND"] == CONSOLE_MAIL_BACKEND
    code = "from django.conf import settings; print(settings.EMAIL_BACKEND, settings.DEFAULT_FROM_EMAIL)"
    result = manage("shell", "-c", code, env={**PRODUCTION_ENV, "DEFAULT_FROM_EMAIL": "fund@example.org"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == [SMTP_MAIL_BACKEND, "fund@example.org"]
