FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY inference ./inference
RUN pip install --no-cache-dir .
COPY . .
# Static files (admin, playground) are collected at build time and served by WhiteNoise.
RUN python manage.py collectstatic --noinput
EXPOSE 8000
CMD ["gunicorn", "cfai_project.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3"]
