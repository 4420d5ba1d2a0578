from django.core.management.base import BaseCommand, CommandError

from inference.exceptions import InferenceConfigurationError, InferenceError
from inference.services.catalog_sync import sync_from_path, sync_models
from inference.services.upstream import get_client


class Command(BaseCommand):
    help = (
        "Refresh the database copy of Cloudflare's model records: from the live "
        "/ai/models/search (all pages) and /ai/models/schema (each model's schemas), "
        "or offline --from a folder or JSON file of records. Models no longer listed "
        "are marked delisted, never deleted; changed prices become new Price versions."
    )

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="source", metavar="PATH",
                            help="A folder of records (Cloudflare's record JSON files, with "
                                 "deprecated-models.ts / pricing.mdx / changelog/ when present) "
                                 "or one JSON file holding a record or a list of them.")
        parser.add_argument("--task", help="Only models of this task (Cloudflare's task name or our slug).")
        parser.add_argument("--per-page", type=int, default=100, help="Page size asked of the search.")
        parser.add_argument("--no-schemas", action="store_true",
                            help="Skip the per-model schema requests (properties and prices only).")

    def handle(self, source=None, task=None, per_page=100, no_schemas=False, **options):
        if source:
            try:
                report = sync_from_path(source)
            except (OSError, ValueError) as exc:
                raise CommandError(f"Cannot read records from {source}: {exc}") from exc
        else:
            try:
                client = get_client()
                items = list(client.models_search(task=task, per_page=per_page))
                schemas = {}
                if not no_schemas:
                    for item in items:
                        name = item.get("name")
                        if isinstance(name, str):
                            try:
                                schemas[name] = client.model_schema(name)
                            except InferenceError as exc:
                                self.stderr.write(f"no schema for {name}: {exc}")
                report = sync_models(items, schemas, complete=task is None)
            except (InferenceConfigurationError, InferenceError) as exc:
                raise CommandError(f"Model search failed: {exc}") from exc
        for skipped in report.skipped:
            self.stderr.write(f"skipped {skipped}: no input shape for that task")
        self.stdout.write(str(report))
