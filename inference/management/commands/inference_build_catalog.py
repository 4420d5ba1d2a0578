from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from inference import records


class Command(BaseCommand):
    help = (
        "Build the model snapshot shipped in the package (inference/data/workers_ai_models.json.gz) "
        "from a folder of Cloudflare model records (src/content/workers-ai-models/*.json of "
        "cloudflare/cloudflare-docs, plus deprecated-models.ts, pricing.mdx, changelog/*.mdx and "
        "INDEX.md when present). Deterministic: the same records give the same bytes."
    )

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="source", required=True, metavar="FOLDER")
        parser.add_argument("--output", default=str(records.SNAPSHOT_PATH))

    def handle(self, source, output, **options):
        folder = Path(source)
        if not folder.exists():
            raise CommandError(f"{folder} does not exist")
        entries = records.build_snapshot(folder)
        if not entries:
            raise CommandError(f"no model records found in {folder}")
        records.write_snapshot(entries, Path(output))
        retired = sum(1 for e in entries.values() if e.retired_on)
        priced = sum(1 for e in entries.values() if e.prices is not None and not e.retired_on)
        built = sum(1 for e in entries.values() if e.built)
        self.stdout.write(
            f"{len(entries)} models written to {output}: {len(entries) - retired} current "
            f"({priced} priced), {retired} retired, {built} rebuilt from an OpenAI-style record"
        )
