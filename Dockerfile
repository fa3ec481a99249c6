# Production image: gunicorn (CMD), and the same image runs the Celery worker, beat and the
# one-shot migrate service in docker-compose.yml. Every setting comes from the environment.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=config.settings.production \
    STATIC_ROOT=/app/staticfiles \
    LRB_VAR_DIR=/app/var

# WeasyPrint, which the Celery worker runs to render dossier PDFs: Pango, HarfBuzz's subsetter
# (subsetting fonts with fontTools instead took half of a render) and one font family.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 --user-group app
WORKDIR /app

# Dependencies first, so that a code change does not reinstall them. The project itself has no
# importable packages (manage.py runs from /app); installing it installs its dependencies.
COPY pyproject.toml README.md ./
RUN pip install . && rm -rf build ./*.egg-info

COPY --chown=app:app . .
# audit-checkpoints and media: docker-compose mounts volumes there, which take this owner.
RUN mkdir -p /app/var/audit-checkpoints /app/var/media /app/staticfiles \
    && chown -R app:app /app/var /app/staticfiles
USER app

# Production settings refuse to load without SECRET_KEY; this placeholder exists only for this
# one command and is not kept in the image's environment.
RUN SECRET_KEY=collectstatic-at-build-time-only-not-a-real-secret-0123456789 \
    python manage.py collectstatic --no-input

EXPOSE 8000
# Workers: gunicorn reads WEB_CONCURRENCY from the environment.
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--access-logfile", "-"]
