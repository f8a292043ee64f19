# The production image: gunicorn serving config.wsgi, and the same image runs the Celery worker,
# Celery beat and the one-shot migrations (see docker-compose.yml). tests/project/test_docker_compose.py
# checks that every command and file named here exists in the project.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=config.settings.production

WORKDIR /app

# Runtime dependencies only (requirements-dev.txt stays out of the image). Every pinned package
# ships a manylinux wheel, so the slim image needs no compiler or libpq.
COPY requirements.txt ./
RUN pip install --no-cache-dir --root-user-action=ignore -r requirements.txt

# A system user without a login shell runs every process. The code stays owned by root, so the
# running process cannot change it; the one directory it writes (Celery beat's schedule) is its own.
RUN groupadd --system app \
    && useradd --system --gid app --no-create-home --home-dir /app --shell /usr/sbin/nologin app \
    && mkdir -p /var/lib/celery-beat \
    && chown app:app /var/lib/celery-beat

COPY . .

# The production settings read these three at import; the values below exist only for this step
# (collectstatic touches neither the database nor the secret key) and are not kept in the image.
RUN DATABASE_URL=postgres://build@localhost/build \
    DJANGO_SECRET_KEY=build-only \
    DJANGO_ALLOWED_HOSTS=localhost \
    python manage.py collectstatic --noinput

USER app

EXPOSE 8000

# 3 sync workers suit a small container (raise --workers with the CPUs it gets; each keeps one
# PostgreSQL connection, see the README's "Database connections" for the sizing); 30 s is
# gunicorn's usual timeout and far above any request this service should take. Heartbeat files go
# to /dev/shm because the container's /tmp sits on the overlay filesystem.
CMD ["gunicorn", "config.wsgi:application", \
     "--bind", "0.0.0.0:8000", \
     "--workers", "3", \
     "--timeout", "30", \
     "--graceful-timeout", "30", \
     "--worker-tmp-dir", "/dev/shm", \
     "--access-logfile", "-"]
