"""The one place that reads the process environment.

Settings modules import `env` from here and read each variable once. Every variable is listed in
`.env.example`. Production secrets are read without a default, so a missing one stops the process
at start instead of running with a guess.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

CONSOLE_MAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
SMTP_MAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"


def mail_settings(*, default_backend: str) -> dict[str, object]:
    """Django's EMAIL_* settings from EMAIL_URL (`smtp+tls://user:pass@host:587`, read by
    django-environ; the password percent-encoded) or, without it, from the EMAIL_* variables one
    by one. `default_backend` applies when neither names a backend."""
    url = env.str("EMAIL_URL", default="")
    if url:
        parsed = env.email_url_config(url)
        return {
            "EMAIL_BACKEND": parsed["EMAIL_BACKEND"],
            "EMAIL_HOST": parsed["EMAIL_HOST"] or "localhost",
            "EMAIL_PORT": parsed["EMAIL_PORT"] or 25,
            "EMAIL_HOST_USER": parsed["EMAIL_HOST_USER"] or "",
            "EMAIL_HOST_PASSWORD": parsed["EMAIL_HOST_PASSWORD"] or "",
            "EMAIL_USE_TLS": bool(parsed.get("EMAIL_USE_TLS", False)),
            "EMAIL_USE_SSL": bool(parsed.get("EMAIL_USE_SSL", False)),
        }
    return {
        "EMAIL_BACKEND": env.str("EMAIL_BACKEND", default="") or default_backend,
        "EMAIL_HOST": env.str("EMAIL_HOST", default="localhost"),
        "EMAIL_PORT": env.int("EMAIL_PORT", default=25),
        "EMAIL_HOST_USER": env.str("EMAIL_HOST_USER", default=""),
        "EMAIL_HOST_PASSWORD": env.str("EMAIL_HOST_PASSWORD", default=""),
        "EMAIL_USE_TLS": env.bool("EMAIL_USE_TLS", default=False),
        "EMAIL_USE_SSL": env.bool("EMAIL_USE_SSL", default=False),
    }
