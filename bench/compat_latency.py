#!/usr/bin/env python
"""What the Cloudflare-compatible endpoint costs on top of the upstream.

Two paths, same HTTP client code, same payload, same concurrency, measured in the
same run (rounds alternate between the two so machine load hits both alike):

* direct: ``POST <emulator>/client/v4/accounts/{id}/ai/run/{model}``;
* compat: ``POST <our site>/client/v4/accounts/{id}/ai/run/{model}`` with our API
  key — authenticated, validated, stored as a run, executed in the web process,
  relayed, recorded.

Reported: latency per JSON request (p50 / p95 / mean) and throughput, the added
latency (compat − direct) and the ratio; for ``"stream": true`` the time to first
token and the mean gap between tokens, with the same ratios.

The script starts everything itself: the emulator (a subprocess), a database
(``--database-url``, default a fresh SQLite file), a user and API key, and the site
under gunicorn (gthread workers) pointed at the emulator.  No Redis needed.

    python bench/compat_latency.py --requests 200 --concurrency 8 --latency-ms 50
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT_ID = "bench-account"
CF_TOKEN = "bench-upstream-token"
MODEL = "@cf/meta/llama-3.1-8b-instruct-fp8"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not come up within {timeout:.0f}s")


class Stack:
    """Emulator + migrated database + API key + gunicorn, torn down on exit."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.procs: list[subprocess.Popen] = []
        self.tmp = tempfile.TemporaryDirectory(prefix="cfai-bench-")
        self.emulator_port = free_port()
        self.site_port = free_port()
        self.emulator_url = f"http://127.0.0.1:{self.emulator_port}/client/v4"
        self.site_url = f"http://127.0.0.1:{self.site_port}/client/v4"
        database_url = args.database_url or f"sqlite:///{self.tmp.name}/bench.sqlite3"
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": database_url,
            "CLOUDFLARE_ACCOUNT_ID": ACCOUNT_ID,
            "CLOUDFLARE_API_TOKEN": CF_TOKEN,
            "CLOUDFLARE_BASE_URL": self.emulator_url,
            "CFAI_LOCAL_CACHE": "1",
            "DJANGO_DEBUG": "0",  # DEBUG keeps every SQL query in memory: not production
            # Production profile over plain HTTP on loopback (bench only): a secret key,
            # no HTTPS redirect, no secure-only cookies.
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "DJANGO_SECURE_COOKIES": "false",
            "MEDIA_ROOT": f"{self.tmp.name}/media",
        }
        for name in ("CLOUDFLARE_EMAIL", "CLOUDFLARE_API_KEY"):
            self.env.pop(name, None)
        self.key = ""

    def _spawn(self, argv: list[str], log: str) -> subprocess.Popen:
        out = open(Path(self.tmp.name) / log, "wb")
        proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    def _manage(self, *argv: str) -> str:
        done = subprocess.run([sys.executable, "manage.py", *argv], cwd=ROOT, env=self.env,
                              capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"manage.py {' '.join(argv)} failed:\n{done.stderr[-2000:]}")
        return done.stdout

    def start(self) -> Stack:
        a = self.args
        self._spawn([sys.executable, "-m", "inference.emulator", "--port", str(self.emulator_port),
                     "--latency-ms", str(a.latency_ms), "--token-delay-ms", str(a.token_delay_ms),
                     "--token", CF_TOKEN], "emulator.log")
        health = f"http://127.0.0.1:{self.emulator_port}/_emulator/health"
        wait_until(lambda: requests.get(health, timeout=2).ok, "the emulator")

        self._manage("migrate", "--noinput", "-v", "0")
        self._manage("shell", "-c",
                     "from django.contrib.auth import get_user_model as g; "
                     "g().objects.get_or_create(username='bench')")
        self.key = self._manage("inference_create_key", "bench", "--name", "bench").strip().splitlines()[-1]

        threads = max(8, 2 * a.concurrency)
        self._spawn([sys.executable, "-m", "gunicorn", "cfai_project.wsgi:application",
                     "-b", f"127.0.0.1:{self.site_port}", "-k", "gthread", "-w", str(a.workers),
                     "--threads", str(threads), "--timeout", "120", "--log-level", "warning"],
                    "gunicorn.log")
        probe = f"{self.site_url}/accounts/{ACCOUNT_ID}/ai/run/{MODEL}"
        wait_until(lambda: requests.post(probe, json={}, timeout=2).status_code == 401, "gunicorn")
        return self

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        self.tmp.cleanup()

    def target(self, path: str) -> tuple[str, dict[str, str]]:
        url = self.emulator_url if path == "direct" else self.site_url
        token = CF_TOKEN if path == "direct" else self.key
        return f"{url}/accounts/{ACCOUNT_ID}/ai/run/{MODEL}", {"Authorization": f"Bearer {token}"}


_local = threading.local()


def session() -> requests.Session:
    # One kept-alive connection per client thread, as a real client pool would.
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    return _local.session


def json_call(url: str, headers: dict[str, str], payload: dict) -> float:
    started = time.perf_counter()
    response = session().post(url, json=payload, headers=headers, timeout=60)
    body = response.content
    elapsed = time.perf_counter() - started
    if response.status_code != 200 or b'"success": true' not in body and b'"success":true' not in body:
        raise RuntimeError(f"HTTP {response.status_code}: {body[:200]!r}")
    return elapsed


@dataclass
class StreamTiming:
    ttft: float
    gap: float  # mean time between token events after the first
    total: float


def stream_call(url: str, headers: dict[str, str], payload: dict) -> StreamTiming:
    started = time.perf_counter()
    response = session().post(url, json={**payload, "stream": True}, headers=headers, timeout=60, stream=True)
    if response.status_code != 200:
        raise RuntimeError(f"HTTP {response.status_code}: {response.content[:200]!r}")
    arrivals: list[float] = []
    buffer = b""
    while True:
        # read1: whatever has arrived (iter_content waits for a close-delimited body's end).
        chunk = response.raw.read1(65536)
        if not chunk:
            break
        now = time.perf_counter()
        buffer += chunk
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            if event.startswith(b"data: {") and b'"usage"' not in event:
                arrivals.append(now)
    response.close()
    if b"[DONE]" not in buffer and not arrivals:
        raise RuntimeError("stream produced no tokens")
    total = time.perf_counter() - started
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    return StreamTiming(arrivals[0] - started, statistics.mean(gaps) if gaps else 0.0, total)


@dataclass
class Samples:
    latencies: list[float] = field(default_factory=list)
    streams: list[StreamTiming] = field(default_factory=list)
    wall: float = 0.0
    count: int = 0


def run_batch(fn, url, headers, payload, n: int, concurrency: int) -> tuple[list, float]:
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(lambda _i: fn(url, headers, payload), range(n)))
    return results, time.perf_counter() - started


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="JSON requests per path (default 200)")
    parser.add_argument("--streams", type=int, default=40, help="stream requests per path (default 40)")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per path (default 2)")
    parser.add_argument("--latency-ms", type=int, default=50, help="emulator time per run (default 50)")
    parser.add_argument("--token-delay-ms", type=int, default=10, help="emulator gap between tokens (default 10)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"),
                        help="database for the site (default: a fresh SQLite file)")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args(argv)

    stack = Stack(args).start()
    payload = {"prompt": "Explain what a reverse proxy adds to latency.", "max_tokens": args.max_tokens}
    samples = {"direct": Samples(), "compat": Samples()}
    try:
        for path in samples:  # warm-up: connections, imports, first queries
            url, headers = stack.target(path)
            run_batch(json_call, url, headers, payload, 2 * args.concurrency, args.concurrency)
        per_round = max(1, args.requests // args.rounds)
        per_round_streams = max(1, args.streams // args.rounds)
        for _round in range(args.rounds):
            for path, s in samples.items():
                url, headers = stack.target(path)
                lat, wall = run_batch(json_call, url, headers, payload, per_round, args.concurrency)
                s.latencies += lat
                s.wall += wall
                s.count += len(lat)
                streams, _ = run_batch(stream_call, url, headers, payload, per_round_streams, args.concurrency)
                s.streams += streams
    finally:
        stack.stop()

    figures: dict[str, dict[str, float]] = {}
    for path, s in samples.items():
        figures[path] = {
            "p50_ms": pct(s.latencies, 0.5) * 1000,
            "p95_ms": pct(s.latencies, 0.95) * 1000,
            "mean_ms": statistics.mean(s.latencies) * 1000,
            "rps": s.count / s.wall,
            "ttft_p50_ms": pct([t.ttft for t in s.streams], 0.5) * 1000,
            "ttft_p95_ms": pct([t.ttft for t in s.streams], 0.95) * 1000,
            "token_gap_ms": statistics.mean(t.gap for t in s.streams) * 1000,
        }
    d, c = figures["direct"], figures["compat"]
    print(f"\ncompat endpoint vs direct emulator — {args.requests} JSON + {args.streams} stream requests per path, "
          f"concurrency {args.concurrency}, emulator {args.latency_ms} ms/run + {args.token_delay_ms} ms/token, "
          f"gunicorn gthread ×{args.workers}, db {stack.env['DATABASE_URL'].split(':')[0]}")
    print(f"{'':22}{'direct':>10}{'compat':>10}{'added':>10}{'ratio':>8}")
    for label, key in (("JSON p50 (ms)", "p50_ms"), ("JSON p95 (ms)", "p95_ms"), ("JSON mean (ms)", "mean_ms"),
                       ("stream TTFT p50 (ms)", "ttft_p50_ms"), ("stream TTFT p95 (ms)", "ttft_p95_ms"),
                       ("token gap mean (ms)", "token_gap_ms")):
        print(f"{label:22}{d[key]:10.1f}{c[key]:10.1f}{c[key] - d[key]:+10.1f}{c[key] / d[key]:8.2f}")
    print(f"{'throughput (req/s)':22}{d['rps']:10.1f}{c['rps']:10.1f}{c['rps'] - d['rps']:+10.1f}"
          f"{c['rps'] / d['rps']:8.2f}")
    if args.json:
        print(json.dumps({"args": vars(args), "figures": figures}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
