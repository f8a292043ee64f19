"""Production settings: every secret and address must come from the environment.

DATABASE_URL and DJANGO_SECRET_KEY are read without defaults before the base settings load, so a
missing one stops the process at start (and the embedded development database is never used).
"""

from config.env import SMTP_MAIL_BACKEND, env, mail_settings

env.str("DATABASE_URL")  # Required: raises ImproperlyConfigured when unset.

from config.settings.base import *  # noqa: E402, F403

SECRET_KEY = env.str("DJANGO_SECRET_KEY")
DEBUG = False
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
LANGUAGE_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# Staff sign in with a second factor unless the environment says otherwise.
STAFF_2FA_REQUIRED = env.bool("STAFF_2FA_REQUIRED", default=True)
# Mail: without EMAIL_URL or EMAIL_BACKEND, SMTP (EMAIL_HOST, default localhost), never the console.
EMAIL_BACKEND = str(mail_settings(default_backend=SMTP_MAIL_BACKEND)["EMAIL_BACKEND"])

STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
