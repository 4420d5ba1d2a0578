import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cfai_project.settings")

app = Celery("cfai_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(related_name="jobs")
