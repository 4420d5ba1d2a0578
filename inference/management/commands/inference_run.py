"""``manage.py inference_run MODEL --input JSON|@file [--wait] [--out DIR]``.

Submits through the same service as the REST API (validation, storage, queueing
all happen once, there), so a run started here is an ordinary run: in the admin,
the history and the usage figures, with source "cli"."""

from __future__ import annotations

import json
import mimetypes
import time
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from inference.exceptions import SubmissionError
from inference.models import Run, RunMedia
from inference.serializers import RunSerializer
from inference.services.submission import Submission, submit_run


def read_input(value: str) -> dict[str, Any]:
    """JSON text, or ``@path`` to a JSON file (``@-`` reads standard input)."""
    if value.startswith("@"):
        path = value[1:]
        try:
            if path == "-":
                import sys

                text = sys.stdin.read()
            else:
                text = Path(path).read_text()
        except OSError as exc:
            raise CommandError(f"--input: cannot read {path}: {exc.strerror}") from exc
    else:
        text = value
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CommandError(f"--input: not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CommandError("--input: must be a JSON object (the model input).")
    return data


class Command(BaseCommand):
    help = "Submit a Workers AI run; with --wait, show progress and print the finished run."

    def add_arguments(self, parser) -> None:
        parser.add_argument("model", help="Model name, e.g. @cf/meta/llama-3.1-8b-instruct-fp8.")
        parser.add_argument("--input", required=True, help="The model input: JSON text, or @file.json.")
        parser.add_argument("--task", help="Task slug; needed only for models outside the catalog.")
        parser.add_argument(
            "--file", action="append", default=[], metavar="FIELD=PATH",
            help="Attach a file as an upload (image, audio or mask), e.g. --file image=cat.png.",
        )
        parser.add_argument("--wait", action="store_true", help="Wait for the run to finish.")
        parser.add_argument("--timeout", type=float, default=600, help="Seconds --wait waits (600).")
        parser.add_argument("--out", help="Directory to save output media to (implies --wait).")
        parser.add_argument(
            "--user", help="Username the run belongs to (default: the only superuser, if exactly one)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = self.resolve_user(options.get("user"))
        uploads = {}
        for spec in options["file"]:
            name, sep, path = spec.partition("=")
            if not sep or not name or not path:
                raise CommandError(f"--file {spec!r}: expected FIELD=PATH.")
            try:
                data = Path(path).read_bytes()
            except OSError as exc:
                raise CommandError(f"--file {name}: cannot read {path}: {exc.strerror}") from exc
            uploads[name] = (data, mimetypes.guess_type(path)[0])
        submission = Submission(
            model=options["model"],
            input=read_input(options["input"]),
            task=options.get("task"),
            uploads=uploads,
            source=Run.Source.CLI,
        )
        try:
            run, _created = submit_run(user, submission)
        except SubmissionError as exc:
            problems = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.errors.items())
            raise CommandError(f"Rejected ({exc.status}): {problems}") from exc
        self.stderr.write(f"Submitted run {run.pk} ({run.task}).")

        if options["wait"] or options["out"]:
            run = self.wait(run.pk, options["timeout"])
        run = Run.objects.select_related("user", "team").prefetch_related("media").get(pk=run.pk)
        self.stdout.write(json.dumps(RunSerializer(run).data, indent=2, default=str))
        if options["out"] and run.status == "succeeded":
            for path in self.save_media(run, Path(options["out"])):
                self.stderr.write(f"Saved {path}")
        if run.status == "failed":
            raise CommandError(f"Run {run.pk} failed: {run.error_message}")
        if run.status == "canceled":
            raise CommandError(f"Run {run.pk} was canceled.")

    def resolve_user(self, username: str | None):
        User = get_user_model()
        if username:
            try:
                return User.objects.get(**{User.USERNAME_FIELD: username})
            except User.DoesNotExist as exc:
                raise CommandError(f"No user named {username!r}.") from exc
        admins = list(User.objects.filter(is_superuser=True, is_active=True)[:2])
        if len(admins) != 1:
            raise CommandError("Pass --user USERNAME: the run must belong to someone.")
        return admins[0]

    def wait(self, run_id, timeout: float) -> Run:
        """Poll the stored run, reporting each status change on stderr."""
        deadline = time.monotonic() + timeout
        last = None
        started = time.monotonic()
        while True:
            run = Run.objects.get(pk=run_id)
            state = (run.status, run.attempts)
            if state != last:
                last = state
                note = f" (attempt {run.attempts})" if run.attempts > 1 else ""
                self.stderr.write(f"[{time.monotonic() - started:6.1f}s] {run.status}{note}")
            if run.is_terminal:
                return run
            if time.monotonic() >= deadline:
                raise CommandError(
                    f"Run {run_id} still {run.status} after {timeout:g}s: is a Celery worker "
                    "running? (celery -A <your project> worker)"
                )
            time.sleep(0.25)

    def save_media(self, run: Run, out: Path) -> list[Path]:
        out.mkdir(parents=True, exist_ok=True)
        saved = []
        for media in run.media.filter(role=RunMedia.Role.OUTPUT):
            ext = Path(media.file.name).suffix or mimetypes.guess_extension(media.content_type) or ""
            target = out / f"{run.pk}-{media.field}{ext}"
            with media.file.open("rb") as src:
                target.write_bytes(src.read())
            saved.append(target)
        return saved
