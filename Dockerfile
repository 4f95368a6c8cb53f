# One image for every process of the cockpit; docker-compose.yml picks the command.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    BEILE_VAR_DIR=/app/var

WORKDIR /app
RUN useradd --create-home --uid 1000 beile
# pg_dump / pg_restore for `manage.py backup` and `restore` (docker-compose.yml runs PostgreSQL 15 to match).
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-client && rm -rf /var/lib/apt/lists/*

# Dependencies first (pyproject installs no package of its own) so code changes reuse this layer.
COPY pyproject.toml ./
RUN pip install .

COPY . .
# Hashed, compressed static files for WhiteNoise; the key only exists for this build step.
RUN DEBUG=0 SECRET_KEY=collectstatic-only-not-used-at-runtime python manage.py collectstatic --noinput \
    && mkdir -p /app/var/media && chown -R beile:beile /app/var

USER beile
EXPOSE 8000
CMD ["gunicorn", "-c", "gunicorn.conf.py", "beile.wsgi"]
