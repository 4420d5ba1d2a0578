"""Streaming latency: time-to-first-token and per-token interval through
``GET /api/runs/{id}/events/`` versus reading the emulator's stream directly.

Starts its own stack on loopback: the Workers AI emulator (in this process), a
dedicated bench database (PostgreSQL ``cfai_bench_live`` when DATABASE_URL is
PostgreSQL, otherwise a SQLite file), a Celery worker and gunicorn (gthread).
Every pair of measurements uses the same prompt, so both paths stream the same
tokens.  Bounded: ``--runs`` pairs, then everything it started is stopped.

    REDIS_URL=redis://127.0.0.1:6379/2 python bench/stream_latency.py --runs 10
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from inference.emulator.server import EmulatorServer  # noqa: E402

MODEL = "@cf/meta/llama-3.1-8b-instruct-fp8"
ACCOUNT = "bench-account"
CF_TOKEN = "bench-cf-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_database_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith("postgres"):
        import psycopg

        base, _, _name = url.rpartition("/")
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = 'cfai_bench_live'").fetchone()
            if not exists:
                conn.execute("CREATE DATABASE cfai_bench_live")
        return f"{base}/cfai_bench_live"
    return "sqlite:////tmp/cfai_bench_live.sqlite3"


def sse_lines(response):
    yield from response.iter_lines(decode_unicode=True)


def direct(emulator: EmulatorServer, prompt: str, max_tokens: int) -> dict:
    started = time.perf_counter()
    times = []
    with requests.post(
        emulator.run_url(ACCOUNT, MODEL), headers={"Authorization": f"Bearer {CF_TOKEN}"},
        json={"prompt": prompt, "max_tokens": max_tokens, "stream": True}, stream=True, timeout=60,
    ) as response:
        response.raise_for_status()
        for line in sse_lines(response):
            if not line.startswith("data: "):
                continue
            data = line[6:]
            if data.strip() == "[DONE]":
                break
            if json.loads(data).get("response"):
                times.append(time.perf_counter() - started)
    return {"ttft": times[0], "tokens": len(times), "per_token": (times[-1] - times[0]) / max(1, len(times) - 1)}


def via_events(session: requests.Session, web: str, prompt: str, max_tokens: int) -> dict:
    started = time.perf_counter()
    created = session.post(
        f"{web}/api/runs/", json={"model": MODEL, "input": {"prompt": prompt, "max_tokens": max_tokens, "stream": True}},
        timeout=30,
    )
    created.raise_for_status()
    run_id = created.json()["id"]
    times, deltas, event = [], 0, None
    with session.get(f"{web}/api/runs/{run_id}/events/", stream=True, timeout=60) as response:
        response.raise_for_status()
        for line in sse_lines(response):
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "output":
                times.append(time.perf_counter() - started)
                deltas += 1
            elif line.startswith("data: ") and event == "done":
                break
    return {"ttft": times[0], "tokens": deltas, "per_token": (times[-1] - times[0]) / max(1, len(times) - 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--latency-ms", type=int, default=50, help="emulator time before the first token")
    parser.add_argument("--token-delay-ms", type=int, default=20, help="emulator pause between tokens")
    opts = parser.parse_args()

    emulator = EmulatorServer(
        tokens={CF_TOKEN}, latency_ms=opts.latency_ms, token_delay_ms=opts.token_delay_ms
    ).start()
    queue = f"cfai-bench-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DATABASE_URL": bench_database_url(),
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "CLOUDFLARE_ACCOUNT_ID": ACCOUNT,
        "CLOUDFLARE_API_TOKEN": CF_TOKEN,
        "CLOUDFLARE_BASE_URL": emulator.base_url,
        "CFAI_QUEUE": queue,
        "DJANGO_SETTINGS_MODULE": "cfai_project.settings",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    key = subprocess.run(
        [python, "manage.py", "shell", "-c",
         "from django.contrib.auth import get_user_model; from inference.services.access import create_api_key;"
         "u, _ = get_user_model().objects.get_or_create(username='bench'); print(create_api_key(u, name='bench')[1])"],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True,
    ).stdout.strip().splitlines()[-1]

    port = free_port()
    procs = []
    log = open("/tmp/cfai-bench-live.log", "ab")
    try:
        procs.append(subprocess.Popen(
            [python, "-m", "celery", "-A", "cfai_project", "worker", "-Q", queue, "-P", "threads", "-c", "4",
             "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING",
             "-n", f"{queue}@%h"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        ))
        procs.append(subprocess.Popen(
            [str(Path(python).parent / "gunicorn"), "cfai_project.wsgi:application", "-b", f"127.0.0.1:{port}",
             "-k", "gthread", "-w", "1", "--threads", "16", "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        ))
        web = f"http://127.0.0.1:{port}"
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if session.get(f"{web}/api/models/", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("web server did not start (see /tmp/cfai-bench-live.log)")
            time.sleep(0.2)
        time.sleep(2)  # let the worker connect to the broker
        via_events(session, web, "warm up", opts.max_tokens)
        direct(emulator, "warm up", opts.max_tokens)

        rows = []
        for index in range(opts.runs):
            prompt = f"bench prompt {index} {uuid.uuid4().hex[:6]}"
            # Alternate the order so neither path always runs on a warmer machine.
            if index % 2:
                d = direct(emulator, prompt, opts.max_tokens)
                e = via_events(session, web, prompt, opts.max_tokens)
            else:
                e = via_events(session, web, prompt, opts.max_tokens)
                d = direct(emulator, prompt, opts.max_tokens)
            rows.append((d, e))

        def med(path: int, key: str) -> float:
            return statistics.median(r[path][key] for r in rows)

        d_ttft, e_ttft = med(0, "ttft") * 1000, med(1, "ttft") * 1000
        d_tok, e_tok = med(0, "per_token") * 1000, med(1, "per_token") * 1000
        print(f"stream latency, {opts.runs} runs, emulator latency {opts.latency_ms} ms, "
              f"token delay {opts.token_delay_ms} ms, median tokens {med(0, 'tokens'):.0f} "
              f"(relayed {med(1, 'tokens'):.0f})")
        print(f"{'path':<28}{'TTFT ms':>10}{'per-token ms':>15}")
        print(f"{'emulator direct':<28}{d_ttft:>10.1f}{d_tok:>15.2f}")
        print(f"{'/api/runs/{id}/events/':<28}{e_ttft:>10.1f}{e_tok:>15.2f}")
        print(f"ratio events/direct: TTFT x{e_ttft / d_ttft:.2f} (+{e_ttft - d_ttft:.1f} ms), "
              f"per-token x{e_tok / d_tok:.3f} (+{e_tok - d_tok:.2f} ms/token)")
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        emulator.stop()


if __name__ == "__main__":
    main()
