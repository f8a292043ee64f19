"""The Celery application. Workers start it with `celery -A config worker`.

Configuration comes from the Django settings whose names start with CELERY_. With REDIS_URL unset
the settings make every task run eagerly in the calling process.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

app = Celery("coupons")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
