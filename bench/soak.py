"""Soak: push N runs (default 10,000) with a random mix of upstream faults through
real Celery workers, PostgreSQL, Redis and the emulator, then check the promise.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cfai REDIS_URL=redis://127.0.0.1:6379/5 \\
        python bench/soak.py --runs 10000

It creates its own database (``--db-name``, dropped afterwards unless ``--keep-db``),
starts the emulator and the workers (one with beat, so the sweeper runs) as
subprocesses, submits through ``submit_run`` from several threads, and
optionally SIGKILLs a worker mid-soak (``--kill-after``).  Faults travel as prompt
markers (``[[emulator:fault=...,key=soak-N]]``), so each targets exactly one run.

Reported: accepted, terminal (by status), lost (accepted but never reached a
terminal state *and* never picked up, or missing), stuck (not terminal at the end),
duplicate upstream calls beyond recorded attempts (``/_emulator/requests`` per run
against ``run.attempts``), and wall time.  lost, stuck and duplicates must be 0.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: the project root is importable
TOKEN = "soak-token"
ACCOUNT = "soak-account"

# (model, input builder, stream)
MODELS = [
    ("@cf/meta/llama-3.1-8b-instruct-fp8", lambda text: {"prompt": text, "max_tokens": 8}, False),
    ("@cf/meta/llama-3.1-8b-instruct-fp8", lambda text: {"prompt": text, "max_tokens": 8, "stream": True}, True),
    ("@cf/huggingface/distilbert-sst-2-int8", lambda text: {"text": text}, False),
    ("@cf/baai/bge-base-en-v1.5", lambda text: {"text": [text]}, False),
]
# Fault mix: (marker fault, times) with weights; most runs have none.
FAULTS = [
    (None, 0, 70),
    ("429_3040", 1, 8),
    ("429_3040", 2, 4),
    ("500", 1, 5),
    ("drop", 1, 3),
    ("slow", 1, 4),
    ("invalid_json", 1, 3),
    ("cut_stream", 1, 3),
]
TAG = re.compile(r"soak-(\d+):")


def serve_emulator(port: int) -> None:
    """Child mode: the emulator with a request log large enough for the soak."""
    from inference.emulator import state

    state.REQUEST_LOG_LIMIT = 1_000_000
    from inference.emulator.server import EmulatorServer

    server = EmulatorServer(host="127.0.0.1", port=port, tokens=[TOKEN], account_ids=[ACCOUNT]).start()
    print(f"emulator ready {server.base_url}", flush=True)
    server.serve_forever()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def admin_sql(base_url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(with_db(base_url, "postgres"), autocommit=True) as conn:
        conn.execute(sql)


def wait_for(path: Path, text: bytes, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[:4]} exited:\n{path.read_text()[-3000:]}")
        if path.exists() and text in path.read_bytes():
            return
        time.sleep(0.1)
    raise RuntimeError(f"timeout waiting for {text!r} in {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=16, help="threads per worker")
    parser.add_argument("--submitters", type=int, default=4, help="submitting threads")
    parser.add_argument("--kill-after", type=float, default=20.0, help="SIGKILL one worker after N s (0 = never)")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up waiting after N s")
    parser.add_argument("--db-name", default="cfai_soak")
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--serve-emulator", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_emulator is not None:
        serve_emulator(args.serve_emulator)
        return 0

    base_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cfai")
    if not base_url.startswith("postgres"):
        sys.exit("The soak needs PostgreSQL: set DATABASE_URL=postgres://…")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    db_url = with_db(base_url, args.db_name)
    queue = f"cfai-soak-{os.getpid()}"
    logs = ROOT / ".run" / "soak"
    logs.mkdir(parents=True, exist_ok=True)
    random.seed(args.seed)

    admin_sql(base_url, f'DROP DATABASE IF EXISTS "{args.db_name}" WITH (FORCE)')
    admin_sql(base_url, f'CREATE DATABASE "{args.db_name}"')
    procs: list[subprocess.Popen] = []
    port = free_port()
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "DJANGO_SETTINGS_MODULE": "cfai_project.settings",
        "PYTHONPATH": str(ROOT),
        "CLOUDFLARE_ACCOUNT_ID": ACCOUNT,
        "CLOUDFLARE_API_TOKEN": TOKEN,
        "CLOUDFLARE_BASE_URL": f"http://127.0.0.1:{port}/client/v4",
        "CFAI_QUEUE": queue,
        "CFAI_RETRY_BACKOFF_BASE": "0.05",
        "CFAI_RETRY_BACKOFF_MAX": "1.0",
        "CFAI_HEARTBEAT_INTERVAL": "1",
        "CFAI_HEARTBEAT_TIMEOUT": "10",
        "CFAI_SWEEP_INTERVAL": "2",
        "CFAI_SWEEP_QUEUED_AFTER": "20",
        # Pacing stays on, scaled up (a paid account's limits) so the soak takes minutes.
        "CFAI_RATE_LIMIT_SCALE": "20",
        "LOG_LEVEL": "WARNING",
        "MEDIA_ROOT": str(logs / "media"),
    })
    env.pop("CLOUDFLARE_EMAIL", None)
    env.pop("CLOUDFLARE_API_KEY", None)
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "CLOUDFLARE_ACCOUNT_ID", "CLOUDFLARE_API_TOKEN",
                                           "CLOUDFLARE_BASE_URL", "CFAI_QUEUE", "MEDIA_ROOT")})
    os.environ["DJANGO_SETTINGS_MODULE"] = "cfai_project.settings"

    def start_worker(i: int, beat: bool) -> subprocess.Popen:
        log = logs / f"worker-{i}.log"
        cmd = [sys.executable, "-m", "celery", "-A", "cfai_project", "worker", "-Q", queue, "-P", "threads",
               "-c", str(args.concurrency), "--without-gossip", "--without-mingle", "--without-heartbeat",
               "-l", "WARNING", "-n", f"{queue}-{i}-{random.randrange(1 << 16)}@%h"]
        if beat:
            cmd += ["-B", "-s", str(logs / "beat-schedule")]
        with open(log, "wb") as fh:
            fh.write(b"")
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=open(log, "ab"),
                                stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(proc)
        return proc

    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        emu_log = logs / "emulator.log"
        emu = subprocess.Popen([sys.executable, __file__, "--serve-emulator", str(port)], cwd=ROOT, env=env,
                               stdout=open(emu_log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(emu)
        wait_for(emu_log, b"emulator ready", emu)

        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.db import connection

        from inference.models import TERMINAL_STATUSES, Run
        from inference.services.submission import Submission, submit_run

        user = get_user_model().objects.create_user("soak")
        plan = []
        for i in range(args.runs):
            model, build, stream = random.choice(MODELS)
            fault, times, _ = random.choices(FAULTS, weights=[f[2] for f in FAULTS])[0]
            if fault == "cut_stream" and not stream:
                fault = "invalid_json"
            text = f"soak-{i}: the quick brown fox"
            if fault:
                extra = ",delay_ms=300" if fault == "slow" else ""
                text += f" [[emulator:fault={fault},times={times},key=soak-{i}{extra}]]"
            plan.append((i, model, build(text), fault))

        workers = [start_worker(i, beat=(i == 0)) for i in range(args.workers)]
        started = time.monotonic()

        accepted: dict[int, str] = {}
        refused: Counter = Counter()
        lock = threading.Lock()

        def submitter(chunk):
            try:
                for i, model, payload, _fault in chunk:
                    try:
                        run, _ = submit_run(user, Submission(model=model, input=payload))
                    except Exception as exc:  # noqa: BLE001 - counted and reported
                        with lock:
                            refused[type(exc).__name__] += 1
                        continue
                    with lock:
                        accepted[i] = str(run.pk)
            finally:
                connection.close()

        threads = [threading.Thread(target=submitter, args=(plan[k::args.submitters],)) for k in range(args.submitters)]
        for t in threads:
            t.start()

        killed = False
        deadline = started + args.timeout
        last_report = 0.0
        while True:
            now = time.monotonic()
            if args.kill_after and not killed and now - started >= args.kill_after and len(workers) > 1:
                victim = workers[-1]
                os.killpg(victim.pid, signal.SIGKILL)
                victim.wait()
                workers[-1] = start_worker(len(workers) - 1, beat=False)
                killed = True
                print(f"[{now - started:6.1f}s] SIGKILLed a worker mid-soak and started a new one", flush=True)
            submitting = any(t.is_alive() for t in threads)
            open_runs = Run.objects.exclude(status__in=TERMINAL_STATUSES).count()
            if now - last_report >= 10:
                print(f"[{now - started:6.1f}s] accepted {len(accepted)}, not terminal {open_runs}", flush=True)
                last_report = now
            if not submitting and open_runs == 0:
                break
            if now > deadline:
                print("timeout: giving up waiting", flush=True)
                break
            time.sleep(1.0)
        wall = time.monotonic() - started
        for t in threads:
            t.join()
        time.sleep(2.0)  # a late duplicate call would land in the log now

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_emulator/requests", timeout=60) as response:
            body = json.loads(response.read())
        entries = body if isinstance(body, list) else body.get("requests", body.get("results", []))
        calls: Counter = Counter()
        for entry in entries:
            match = TAG.search(entry.get("body", ""))
            if match:
                calls[int(match.group(1))] += 1

        runs = {str(r.pk): r for r in Run.objects.only("pk", "status", "attempts", "error_message")}
        statuses: Counter = Counter()
        lost = stuck = duplicates = 0
        dup_examples = []
        by_fault: dict[str, Counter] = {}
        for i, _model, _payload, fault in plan:
            run_id = accepted.get(i)
            if run_id is None:
                continue
            run = runs.get(run_id)
            if run is None:
                lost += 1
                continue
            statuses[run.status] += 1
            by_fault.setdefault(fault or "none", Counter())[run.status] += 1
            if run.status not in TERMINAL_STATUSES:
                if run.status == "queued" and run.attempts == 0:
                    lost += 1
                else:
                    stuck += 1
            extra = calls[i] - run.attempts
            if extra > 0:
                duplicates += extra
                dup_examples.append((run_id, calls[i], run.attempts))
        report = {
            "runs_planned": args.runs,
            "accepted": len(accepted),
            "refused": dict(refused),
            "terminal": sum(statuses[s] for s in TERMINAL_STATUSES),
            "by_status": dict(statuses),
            "by_fault": {k: dict(v) for k, v in sorted(by_fault.items())},
            "upstream_calls": sum(calls.values()),
            "recorded_attempts": sum(r.attempts for r in runs.values()),
            "lost": lost,
            "stuck": stuck,
            "duplicate_upstream_calls": duplicates,
            "duplicate_examples": dup_examples[:5],
            "worker_killed": killed,
            "wall_seconds": round(wall, 1),
            "throughput_runs_per_s": round(len(accepted) / wall, 1) if wall else None,
        }
        print(json.dumps(report, indent=2))
        ok = lost == 0 and stuck == 0 and duplicates == 0 and report["terminal"] == len(accepted)
        print("SOAK OK" if ok else "SOAK FAILED")
        return 0 if ok else 1
    finally:
        for proc in procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(timeout=20)
                except Exception:  # noqa: BLE001
                    os.killpg(proc.pid, signal.SIGKILL)
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001
            pass
        if not args.keep_db and args.serve_emulator is None:
            admin_sql(base_url, f'DROP DATABASE IF EXISTS "{args.db_name}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
