"""``manage.py inference_emulator``: serve the Workers AI emulator until Ctrl-C."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from inference.emulator.cli import add_arguments, build_server, serve


class Command(BaseCommand):
    help = "Serve the local Workers AI emulator (Cloudflare's run endpoint) and print its base URL."
    # The emulator touches neither the database nor the URLconf: it must start even
    # while the host project is half configured (it is the dev stack's first service).
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            server = build_server(options)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc

        def write(line: str) -> None:
            self.stdout.write(line)
            self.stdout.flush()

        try:
            serve(server, write)
        except OSError as exc:  # typically: the port is already in use
            raise CommandError(f"cannot serve on {options['host']}:{options['port']}: {exc}") from exc
