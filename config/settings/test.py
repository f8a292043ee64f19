"""Settings for the test suite: the base settings with fast password hashing and eager tasks."""

import atexit
import shutil
import tempfile
from pathlib import Path

from config.env import env
from config.settings.base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True

# Tests measure throttles on purpose; elsewhere the limits stay out of the way.
THROTTLE_ANON = THROTTLE_USER = THROTTLE_LOGIN = "100000/minute"
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"anon": THROTTLE_ANON, "user": THROTTLE_USER}}  # noqa: F405

# Parallel test processes (pytest-xdist) share one Redis: each keeps its throttle counters under its
# own prefix, as each has its own database, so one process's requests never count against another's.
# Its cache.clear() removes only the keys under that prefix, never the whole Redis database (which
# is also the broker of the tests that run a real Celery worker): see tests/cache.py.
CACHES = {
    "default": {**CACHES["default"], "KEY_PREFIX": "test-" + env.str("PYTEST_XDIST_WORKER", default="main")}  # noqa: F405
}
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    CACHES["default"]["BACKEND"] = "tests.cache.ProcessRedisCache"

# Each test process stores documents under a directory of its own in the system's temp dir, new on
# every run and removed at exit: files a rolled-back test left (which no row names) never outlive the
# run, so the audit's storage check never finds another run's files.
DOCUMENTS_ROOT = Path(tempfile.mkdtemp(prefix="coupons-documents-"))
atexit.register(shutil.rmtree, DOCUMENTS_ROOT, ignore_errors=True)
if "location" in STORAGES["documents"].get("OPTIONS", {}):  # noqa: F405
    STORAGES["documents"]["OPTIONS"]["location"] = str(DOCUMENTS_ROOT)  # noqa: F405

# The read replica (config/replica.py): the `replica` alias is a second connection to the test
# database (a test mirror: Django gives it the test database's name), whatever DATABASE_REPLICA_URL
# says, and no router is installed, so the suite reads the primary only. The routing tests install
# the router themselves (tests/project/test_replica_routing.py); tests/project/test_replica.py runs a
# real standby of its own.
DATABASES["replica"] = {**DATABASES["default"], "TEST": {"MIRROR": "default"}}  # noqa: F405
DATABASE_ROUTERS = []
