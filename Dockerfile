# One image for every taskhub process: web (gunicorn), Celery worker and beat, the
# APScheduler engine and one-shot management commands (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so a code change does not reinstall them.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

RUN groupadd --system taskhub \
    && useradd --system --gid taskhub --home-dir /app --no-create-home taskhub \
    && chown taskhub:taskhub /app

COPY --chown=taskhub:taskhub . .

USER taskhub

# The secret key is needed to load settings only; it never reaches the image's environment.
RUN SECRET_KEY=build-only python manage.py collectstatic --noinput

EXPOSE 8000

# Exit 0 only when the required dependencies (the database by default) answer.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "manage.py", "healthcheck"]

CMD ["gunicorn", "taskhub.wsgi:application", "--bind", "0.0.0.0:8000"]
