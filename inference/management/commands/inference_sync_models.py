from django.core.management.base import BaseCommand, CommandError

from inference.catalog_db import sync_models
from inference.exceptions import InferenceConfigurationError, InferenceError
from inference.services.upstream import get_client


class Command(BaseCommand):
    help = (
        "Refresh the model catalog from Cloudflare's /ai/models/search (all pages). "
        "Models the code seed lacks become runnable without naming their task."
    )

    def add_arguments(self, parser):
        parser.add_argument("--task", help="Only models of this task (Cloudflare's task name or our slug).")
        parser.add_argument("--per-page", type=int, default=100, help="Page size asked of the search.")

    def handle(self, task=None, per_page=100, **options):
        try:
            client = get_client()
            items = client.models_search(task=task, per_page=per_page)
            report = sync_models(items)
        except (InferenceConfigurationError, InferenceError) as exc:
            raise CommandError(f"Model search failed: {exc}") from exc
        for skipped in report.skipped:
            self.stderr.write(f"skipped {skipped}: no input shape for that task")
        self.stdout.write(str(report))
