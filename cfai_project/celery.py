import os

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cfai_project.settings")

app = Celery("cfai_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(related_name="jobs")


def _scrub_worker_logs(logger=None, **kwargs):
    # The worker sets up its own handlers (it hijacks the root logger), so the
    # LOGGING filter of settings.py never sees its records: add it here.
    from inference.redaction import SecretScrubFilter

    for handler in logger.handlers if logger is not None else []:
        if not any(isinstance(f, SecretScrubFilter) for f in handler.filters):
            handler.addFilter(SecretScrubFilter())


after_setup_logger.connect(_scrub_worker_logs)
after_setup_task_logger.connect(_scrub_worker_logs)
