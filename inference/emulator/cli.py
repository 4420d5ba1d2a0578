"""Shared command-line entry for ``python -m inference.emulator`` and ``manage.py inference_emulator``."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence

from .server import EmulatorServer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8787, help="port to bind, 0 = any free (default 8787)")
    parser.add_argument("--latency-ms", type=int, default=0, help="simulated upstream time per run")
    parser.add_argument("--token-delay-ms", type=int, default=0, help="pause between streamed tokens")
    parser.add_argument("--token", action="append", default=None,
                        help="accepted Bearer token (repeatable; default: any token)")
    parser.add_argument("--email", default=None, help="accepted X-Auth-Email (with --key)")
    parser.add_argument("--key", default=None, help="accepted X-Auth-Key (with --email)")
    parser.add_argument("--account-id", action="append", default=None,
                        help="accepted account id (repeatable; default: any)")


def build_server(options: argparse.Namespace | dict) -> EmulatorServer:
    opts = vars(options) if isinstance(options, argparse.Namespace) else options
    email, key = opts.get("email"), opts.get("key")
    if bool(email) != bool(key):
        raise ValueError("--email and --key go together")
    return EmulatorServer(
        host=opts["host"],
        port=opts["port"],
        latency_ms=opts["latency_ms"],
        tokens=opts.get("token"),
        legacy_credentials=(email, key) if email and key else None,
        account_ids=opts.get("account_id"),
        token_delay_ms=opts.get("token_delay_ms") or 0,
    )


def serve(server: EmulatorServer, write: Callable[[str], object]) -> None:
    """Start, announce the URLs, serve until Ctrl-C."""
    server.start()
    write(f"Workers AI emulator listening: {server.base_url}")
    write(f"AI Gateway form: {server.gateway_url('<account_id>', '<gateway_id>')}")
    write(f"Control endpoints: {server.url}/_emulator/ (faults, config, requests, stats, reset)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inference.emulator", description="Serve the Workers AI emulator.")
    add_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if options.verbose else logging.INFO)
    try:
        server = build_server(options)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        serve(server, lambda line: print(line, flush=True))
    except OSError as exc:  # typically: the port is already in use
        parser.exit(1, f"cannot serve on {options.host}:{options.port}: {exc}\n")
    return 0
