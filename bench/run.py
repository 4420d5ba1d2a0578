"""The cfai benchmark suite: one entry point, real processes, ratios against
baselines measured in the same run.

    python bench/run.py                 # every scenario (< 10 minutes)
    python bench/run.py --quick         # shorter windows, fewer runs (~2 minutes)
    python bench/run.py -s pipeline     # one scenario (repeatable)
    python bench/run.py --profile       # also py-spy the worker and web server

It starts, as separate processes, the Workers AI emulator, gunicorn serving
``cfai_project.wsgi:application`` and Celery worker(s), against a dedicated
PostgreSQL database (created and migrated here) and a Redis database of its own.
It prints a table and writes ``bench/results/<timestamp>.json``.

The machine is shared, so absolute figures are noisy: every throughput figure is
put next to a baseline measured in the same run (the emulator called directly
from a plain thread pool), which is the physical limit of an I/O-bound pipeline.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PYTHON = sys.executable
BIN = Path(sys.executable).parent

TEXT_MODEL = "@cf/meta/llama-3.1-8b-instruct-fp8"
IMAGE_MODEL = "@cf/stabilityai/stable-diffusion-xl-base-1.0"
# 1664 x 1664 RGB noise: a PNG of ~8.3 MB (noise does not compress).
IMAGE_SIDE = 1664
ACCOUNT = "bench-account"
TOKEN = "bench-token"
TERMINAL = ("succeeded", "failed", "canceled")

SCENARIOS = ("submission", "pipeline", "latency", "compat", "memory", "s2s")


# --- small helpers ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank), 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class HTTP:
    """One keep-alive connection per thread: the cheapest client the stdlib has,
    so the load generator steals as little of the 2 cores as possible."""

    def __init__(self, base: str, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.headers = headers or {}
        self.local = threading.local()

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
            self.local.conn = conn
        return conn

    def request(self, method: str, path: str, body: Any = None, headers: dict | None = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {**self.headers, **(headers or {})}
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        for attempt in range(2):
            conn = self._conn()
            try:
                conn.request(method, path, body=data, headers=hdrs)
                resp = conn.getresponse()
                payload = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    self.local.conn = None
                return resp.status, payload
            except (http.client.HTTPException, OSError):
                conn.close()
                self.local.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


@dataclass
class Figure:
    scenario: str
    name: str
    value: float | None
    unit: str
    target: str = ""
    baseline: float | None = None
    ratio: float | None = None
    passed: bool | None = None
    note: str = ""


@dataclass
class Report:
    started_at: str
    options: dict[str, Any]
    machine: dict[str, Any]
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def add(self, fig: Figure) -> Figure:
        self.figures.append(fig)
        log(f"  {fig.name}: {fmt(fig.value)} {fig.unit} (target {fig.target or '-'})")
        return fig


def fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def at_least(value: float, target: float) -> tuple[float, bool]:
    return (value / target if target else 0.0), value >= target


def at_most(value: float, target: float) -> tuple[float, bool]:
    # Ratio of the budget used: <= 1 passes.
    return (value / target if target else 0.0), value <= target


# --- the stack: emulator, database, web server, workers ------------------------------


@dataclass
class StackOptions:
    db_url: str
    redis_url: str
    web_workers: int
    web_threads: int
    worker_pool: str
    worker_concurrency: int
    worker_procs: int
    latency_ms: int
    profile: bool
    malloc_tuning: bool = True
    submitters: int = 16


class Stack:
    def __init__(self, opts: StackOptions) -> None:
        self.opts = opts
        self.procs: dict[str, list[subprocess.Popen]] = {}
        self.tmp = Path(tempfile.mkdtemp(prefix="cfai-bench-"))
        self.media_root = self.tmp / "media"
        self.emulator_port = free_port()
        self.web_port = free_port()
        self.api_key = ""
        self.profiles: list[Path] = []
        self.private_db: tuple[str, str] | None = None
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "cfai_project.settings",
            "DATABASE_URL": opts.db_url,
            "DATABASE_CONN_MAX_AGE": "600",
            "REDIS_URL": opts.redis_url,
            "CELERY_BROKER_URL": opts.redis_url,
            "CLOUDFLARE_ACCOUNT_ID": ACCOUNT,
            "CLOUDFLARE_API_TOKEN": TOKEN,
            "CLOUDFLARE_BASE_URL": f"http://127.0.0.1:{self.emulator_port}/client/v4",
            # Production settings: DEBUG off (DEBUG keeps every SQL query in memory).
            "DJANGO_DEBUG": "0",
            # Production profile over plain HTTP on loopback (bench only): a secret key,
            # no HTTPS redirect, no secure-only cookies.
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "DJANGO_SECURE_COOKIES": "false",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            # The emulator is not Cloudflare: its per-task limits (300/min for text
            # generation) and our per-key caller throttles would measure themselves,
            # not the pipeline.  Pacing stays on, scaled far above the load.
            "CFAI_RATE_LIMIT_SCALE": "1000",
            "CFAI_THROTTLE_RATE": "1000000/min",
            "CFAI_THROTTLE_SUBMIT_RATE": "1000000/min",
            "MEDIA_ROOT": str(self.media_root),
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
        for name in ("CFAI_QUEUE", "CELERY_TASK_ALWAYS_EAGER", "CLOUDFLARE_EMAIL", "CLOUDFLARE_API_KEY"):
            self.env.pop(name, None)
        self.emulator_url = f"http://127.0.0.1:{self.emulator_port}"
        self.web_url = f"http://127.0.0.1:{self.web_port}"

    # -- processes
    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        out = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            args, cwd=ROOT, env=env or self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs.setdefault(name, []).append(proc)
        return proc

    def stop(self, name: str) -> None:
        procs = self.procs.pop(name, [])
        for proc in procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()

    def close(self, keep_logs: Path | None = None) -> None:
        for name in list(self.procs):
            self.stop(name)
        if self.private_db:
            admin_url, name = self.private_db
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        if keep_logs is not None:
            keep_logs.mkdir(parents=True, exist_ok=True)
            for path in self.tmp.glob("*.log"):
                shutil.copy(path, keep_logs / path.name)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _wait_http(self, url: str, what: str, timeout: float = 60) -> None:
        parts = urlsplit(url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=2)
                conn.request("GET", parts.path or "/")
                conn.getresponse().read()
                conn.close()
                return
            except OSError:
                time.sleep(0.1)
        log = self.tmp / f"{what}.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
        raise RuntimeError(f"{what} did not answer at {url}; its log ends:\n{tail}")

    # -- pieces
    def start_emulator(self) -> None:
        self._spawn("emulator", [PYTHON, "manage.py", "inference_emulator", "--port", str(self.emulator_port),
                                 "--latency-ms", str(self.opts.latency_ms), "--token", TOKEN])
        self._wait_http(f"{self.emulator_url}/_emulator/health", "emulator")

    def emulator_config(self, **changes: Any) -> dict:
        status, body = HTTP(self.emulator_url).request("POST", "/_emulator/config", changes)
        assert status == 200, body
        return json.loads(body)

    def prepare_database(self) -> None:
        """A fresh database each run: a schema left by another branch's migrations
        (or another run's rows) would skew or break the figures.  When the named
        database is busy (someone connected to it), use a private one instead."""
        base, name = self.opts.db_url.rsplit("/", 1)
        admin_url = base + "/postgres"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            try:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            except psycopg.errors.ObjectInUse:
                name = f"{name}_{uuid.uuid4().hex[:8]}"
                self.private_db = (admin_url, name)
                log(f"  database busy; using a private one: {name}")
            conn.execute(f'CREATE DATABASE "{name}"')
        self.opts.db_url = f"{base}/{name}"
        self.env["DATABASE_URL"] = self.opts.db_url
        subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=self.env, check=True)
        script = (
            "from django.contrib.auth import get_user_model\n"
            "from inference.services.access import create_api_key\n"
            "u, _ = get_user_model().objects.get_or_create(username='bench')\n"
            "print(create_api_key(u, name='bench')[1])\n"
        )
        out = subprocess.run([PYTHON, "manage.py", "shell", "-c", script], cwd=ROOT, env=self.env,
                             check=True, capture_output=True, text=True)
        self.api_key = out.stdout.strip().splitlines()[-1]
        self.clear_runs()

    def db(self) -> psycopg.Connection:
        return psycopg.connect(self.opts.db_url, autocommit=True)

    def clear_runs(self) -> None:
        with self.db() as conn:
            conn.execute("TRUNCATE inference_runmedia, inference_run CASCADE")
        self.redis_flush()
        shutil.rmtree(self.media_root, ignore_errors=True)

    def redis_flush(self) -> None:
        import redis

        redis.Redis.from_url(self.opts.redis_url).flushdb()

    def start_web(self, workers: int | None = None, threads: int | None = None) -> None:
        workers = workers or self.opts.web_workers
        threads = threads or self.opts.web_threads
        args = [str(BIN / "gunicorn"), "cfai_project.wsgi:application", "-b", f"127.0.0.1:{self.web_port}",
                "-w", str(workers), "--backlog", "2048", "--access-logfile", "/dev/null",
                "--log-level", "warning"]
        if threads > 1:
            args += ["-k", "gthread", "--threads", str(threads), "--keep-alive", "30"]
        self._spawn("web", args)
        self._wait_http(f"{self.web_url}/api/models/", "gunicorn")

    def start_worker(self, pool: str | None = None, concurrency: int | None = None, procs: int | None = None) -> None:
        pool = pool or self.opts.worker_pool
        concurrency = concurrency or self.opts.worker_concurrency
        procs = procs or self.opts.worker_procs
        env = dict(self.env)
        if self.opts.malloc_tuning:
            # glibc raises its mmap threshold to the largest block freed (up to 32 MB),
            # so after the first 8 MB image every later one comes from the heap; and
            # each worker thread gets its own arena (up to 8 per core) that keeps the
            # 64 KB read chunks of the last image it handled.  Pin the threshold at
            # 1 MB (large buffers go back to the OS on free) and use 2 arenas:
            # growth over 100 images fell from ~150 MB to ~1 MB (README, Operations).
            env.setdefault("MALLOC_MMAP_THRESHOLD_", "1048576")
            env.setdefault("MALLOC_ARENA_MAX", "2")
        for i in range(procs):
            self._spawn("worker", [str(BIN / "celery"), "-A", "cfai_project", "worker", "-P", pool,
                                   "-c", str(concurrency), "-l", "WARNING", "-n", f"bench{i}-{uuid.uuid4().hex[:6]}@%h",
                                   "--without-gossip", "--without-mingle", "--without-heartbeat"], env=env)
        # Ready when a trivial run completes.
        self.api().request("GET", "/api/models/")
        run_id = self.submit({"model": TEXT_MODEL, "input": {"prompt": "warm up"}})
        self.wait_runs([run_id], timeout=60)

    def ensure_worker(self) -> None:
        if not self.procs.get("worker"):
            self.clear_runs()
            self.start_worker()

    def worker_pids(self) -> list[int]:
        pids: list[int] = []
        for proc in self.procs.get("worker", []):
            pids.append(proc.pid)
            pids.extend(children(proc.pid))
        return pids

    def web_pids(self) -> list[int]:
        pids: list[int] = []
        for proc in self.procs.get("web", []):
            pids.extend(children(proc.pid))
        return pids

    # -- API
    def api(self) -> HTTP:
        return HTTP(self.web_url, {"Authorization": f"Bearer {self.api_key}"})

    def submit(self, body: dict, client: HTTP | None = None) -> str:
        status, data = (client or self.api()).request("POST", "/api/runs/", body)
        if status not in (201, 202):
            raise RuntimeError(f"POST /api/runs/ answered {status}: {data[:300]!r}")
        return json.loads(data)["id"]

    def wait_runs(self, ids: list[str], timeout: float) -> None:
        pending = set(ids)
        deadline = time.monotonic() + timeout
        with self.db() as conn:
            while pending and time.monotonic() < deadline:
                rows = conn.execute("SELECT id::text FROM inference_run WHERE id = ANY(%s::uuid[]) AND status = ANY(%s)",
                                    (list(pending), list(TERMINAL))).fetchall()
                pending -= {r[0] for r in rows}
                if pending:
                    time.sleep(0.02)
        if pending:
            raise RuntimeError(f"{len(pending)} runs did not finish within {timeout}s; logs in {self.tmp}")

    # -- profiling
    def profile(self, what: str, pids: list[int], seconds: float) -> list[subprocess.Popen]:
        spy = BIN / "py-spy"
        if not self.opts.profile or not spy.exists():
            return []
        started = []
        RESULTS.mkdir(parents=True, exist_ok=True)
        for pid in pids:
            out = RESULTS / f"profile-{what}-{pid}.txt"
            self.profiles.append(out)
            started.append(subprocess.Popen(
                [str(spy), "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200",
                 "--format", "raw", "--output", str(out), "--nonblocking", "--gil"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        return started


def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return out
    for kid in kids:
        out.append(int(kid))
        out.extend(children(int(kid)))
    return out


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds consumed so far by these processes."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / TICK


def postgres_backends(dbname: str) -> list[int]:
    """The PostgreSQL backends serving ``dbname`` (their title names it)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            title = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("postgres: ") and f" {dbname} " in title:
            pids.append(int(proc.name))
    return pids


class CPUMeter:
    """CPU seconds per component over a window.  On a shared, loaded machine the
    wall-clock figures swing with the neighbours; CPU per operation does not
    (much), and it says which component is the limit."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.groups = {
            "web": stack.web_pids(),
            "worker": stack.worker_pids(),
            "emulator": [p.pid for p in stack.procs.get("emulator", [])],
            "postgres": postgres_backends(stack.opts.db_url.rsplit("/", 1)[1]),
            "load generator": [os.getpid()],
        }
        self.start = {k: cpu_seconds(v) for k, v in self.groups.items()}

    def per_op_ms(self, ops: int) -> dict[str, float]:
        # Backends opened during the window count from zero.
        self.groups["postgres"] = sorted(set(self.groups["postgres"]) |
                                         set(postgres_backends(self.stack.opts.db_url.rsplit("/", 1)[1])))
        used = {k: cpu_seconds(v) - self.start.get(k, 0.0) for k, v in self.groups.items()}
        return {k: round(v * 1000 / max(ops, 1), 2) for k, v in used.items()}


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


# --- load shapes ------------------------------------------------------------------------


def closed_loop(call: Callable[[], Any], concurrency: int, seconds: float, warmup: float = 1.5,
                on_start: Callable[[], Any] | None = None) -> tuple[int, float, list[float]]:
    """``concurrency`` threads calling ``call`` back to back.  Returns the calls
    completed inside the measured window, its length and their latencies (ms)."""
    stop = threading.Event()
    window: dict[str, float] = {}
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []

    def loop() -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                call()
            except Exception as exc:  # recorded, the bench goes on
                errors.append(repr(exc))
                time.sleep(0.05)
                continue
            t1 = time.perf_counter()
            if window and window["start"] <= t0 and t1 <= window.get("end", float("inf")):
                with lock:
                    latencies.append((t1 - t0) * 1000)

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    time.sleep(warmup)
    if on_start is not None:
        on_start()
    window["start"] = time.perf_counter()
    time.sleep(seconds)
    window["end"] = time.perf_counter()
    stop.set()
    for t in threads:
        t.join(timeout=30)
    if errors:
        log(f"  {len(errors)} errors, first: {errors[0]}")
    return len(latencies), window["end"] - window["start"], latencies


# --- scenarios ---------------------------------------------------------------------------


def scenario_submission(stack: Stack, report: Report, quick: bool) -> None:
    """Sustained POST /api/runs/ (validation, insert, enqueue) with no worker
    draining the queue, so the 2 cores go to the web path; vs the same gunicorn
    answering an unauthenticated request (the web stack + load generator ceiling)."""
    stack.stop("worker")
    stack.clear_runs()
    seconds = 5 if quick else 12
    concurrency = 16
    body = {"model": TEXT_MODEL, "input": {"prompt": "benchmark"}}
    api = stack.api()
    bare = HTTP(stack.web_url)

    def ceiling_call() -> None:
        bare.request("GET", "/api/models/")

    n0, w0, _ = closed_loop(ceiling_call, concurrency, seconds / 2)
    ceiling = n0 / w0

    def submit_call() -> None:
        status, data = api.request("POST", "/api/runs/", body)
        if status != 202:
            raise RuntimeError(f"{status} {data[:200]!r}")

    meters: list[CPUMeter] = []
    prof: list[subprocess.Popen] = []

    def on_start() -> None:
        prof.extend(stack.profile("web-submission", stack.web_pids(), seconds))
        meters.append(CPUMeter(stack))

    n, window, lat = closed_loop(submit_call, concurrency, seconds, on_start=on_start)
    cpu = meters[0].per_op_ms(n)
    for p in prof:
        p.wait()
    rps = n / window
    ratio, ok = at_least(rps, 500)
    report.add(Figure("submission", "submission throughput", rps, "req/s", ">= 500", ceiling, ratio, ok,
                      f"closed loop, {concurrency} clients; baseline = same server answering 401"))
    p99 = pct(lat, 99)
    ratio, ok = at_most(p99, 100)
    report.add(Figure("submission", "submission p99", p99, "ms", "<= 100", None, ratio, ok,
                      f"p50 {pct(lat, 50):.1f} ms"))
    with stack.db() as conn:
        stored = conn.execute("SELECT count(*) FROM inference_run").fetchone()[0]
    report.add(Figure("submission", "submission CPU per request", sum(cpu.values()), "ms", "report", None, None,
                      None, "CPU ms/request " + ", ".join(f"{k} {v}" for k, v in cpu.items() if v)
                      + f"; 2 cores allow at most {2000 / max(sum(cpu.values()), 0.01):.0f} req/s"))
    report.details["submission"] = {"cpu_ms_per_request": cpu, "requests": n, "window_s": window, "stored_runs": stored,
                                    "p50_ms": pct(lat, 50), "p99_ms": p99, "ceiling_rps": ceiling}
    stack.clear_runs()


def scenario_pipeline(stack: Stack, report: Report, quick: bool) -> None:
    """Runs/s through POST → worker → emulator (100 ms) with 50 runs in flight,
    vs 50 threads calling the emulator directly."""
    concurrency = 50
    seconds = 6 if quick else 15
    stack.emulator_config(latency_ms=100, image_noise=False)
    emu = HTTP(stack.emulator_url, {"Authorization": f"Bearer {TOKEN}"})
    path = f"/client/v4/accounts/{ACCOUNT}/ai/run/{TEXT_MODEL}"
    body = {"prompt": "benchmark"}

    def direct() -> None:
        status, _ = emu.request("POST", path, body)
        if status != 200:
            raise RuntimeError(status)

    meters: list[CPUMeter] = []
    n, window, _ = closed_loop(direct, concurrency, seconds, on_start=lambda: meters.append(CPUMeter(stack)))
    baseline_cpu = meters[0].per_op_ms(n)
    baseline = n / window
    log(f"  baseline {baseline:.1f} runs/s (limit C/L = {concurrency / 0.1:.0f})")

    stack.ensure_worker()
    stack.clear_runs()
    rate, detail = pipeline_rate(stack, concurrency, seconds)
    ratio = rate / baseline if baseline else 0.0
    report.add(Figure("pipeline", "pipeline throughput", rate, "runs/s", "ratio >= 0.8", baseline, ratio,
                      ratio >= 0.8, f"{concurrency} in flight, emulator 100 ms; baseline = direct calls"))
    report.details["pipeline"] = {**detail, "baseline_rps": baseline, "limit_rps": concurrency / 0.1,
                                  "baseline_cpu_ms_per_call": baseline_cpu}
    report.add(Figure("pipeline", "pipeline CPU per run", sum(detail["cpu_ms_per_run"].values()), "ms", "report",
                      sum(baseline_cpu.values()), None, None,
                      "CPU ms/run " + ", ".join(f"{k} {v}" for k, v in detail["cpu_ms_per_run"].items())
                      + "; baseline (direct call) " + ", ".join(f"{k} {v}" for k, v in baseline_cpu.items() if v)))


def pipeline_rate(stack: Stack, concurrency: int, seconds: float) -> tuple[float, dict]:
    """Keep ``concurrency`` runs in flight: submitters take a slot, one monitor
    polls the database for finished runs and gives slots back."""
    slots = threading.Semaphore(concurrency)
    inflight: dict[str, float] = {}
    lock = threading.Lock()
    stop = threading.Event()
    done: list[tuple[float, float]] = []  # (finished, submitted) perf_counter
    failures: list[str] = []
    body = {"model": TEXT_MODEL, "input": {"prompt": "benchmark"}}

    def submitter() -> None:
        api = stack.api()
        while not stop.is_set():
            if not slots.acquire(timeout=0.2):
                continue
            t0 = time.perf_counter()
            try:
                run_id = stack.submit(body, api)
            except Exception as exc:
                failures.append(repr(exc))
                slots.release()
                time.sleep(0.05)
                continue
            with lock:
                inflight[run_id] = t0

    def monitor() -> None:
        with stack.db() as conn:
            while not stop.is_set():
                with lock:
                    ids = list(inflight)
                if ids:
                    rows = conn.execute(
                        "SELECT id::text, status FROM inference_run WHERE id = ANY(%s::uuid[]) AND status = ANY(%s)",
                        (ids, list(TERMINAL))).fetchall()
                    now = time.perf_counter()
                    with lock:
                        for run_id, status in rows:
                            t0 = inflight.pop(run_id)
                            done.append((now, t0))
                            if status != "succeeded":
                                failures.append(status)
                            slots.release()
                time.sleep(0.005)

    threads = [threading.Thread(target=submitter, daemon=True) for _ in range(stack.opts.submitters)]
    threads.append(threading.Thread(target=monitor, daemon=True))
    prof: list[subprocess.Popen] = []
    for t in threads:
        t.start()
    time.sleep(2)  # warm: pools, connections, the queue at its steady depth
    meter = CPUMeter(stack)
    start = time.perf_counter()
    prof = stack.profile("worker-pipeline", stack.worker_pids(), min(seconds, 10))
    time.sleep(seconds)
    end = time.perf_counter()
    with lock:
        finished_now = sum(1 for d in done if start <= d[0] <= end)
    cpu = meter.per_op_ms(finished_now)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    for p in prof:
        p.wait()
    finished = [d for d in done if start <= d[0] <= end]
    rate = len(finished) / (end - start)
    if failures:
        log(f"  {len(failures)} failures, first: {failures[0]}")
    # Let the tail drain so the next scenario starts clean.
    with lock:
        left = list(inflight)
    if left:
        stack.wait_runs(left, timeout=60)
    return rate, {"completed": len(finished), "window_s": end - start, "failures": len(failures),
                  "cpu_ms_per_run": cpu,
                  "observed_p50_ms": pct([(a - b) * 1000 for a, b in finished], 50)}


def scenario_latency(stack: Stack, report: Report, quick: bool) -> None:
    """Submit-to-finished minus upstream time at a steady 20 runs/s (open loop)."""
    rate = 20
    seconds = 5 if quick else 15
    stack.emulator_config(latency_ms=100, image_noise=False)
    stack.ensure_worker()
    stack.clear_runs()
    ids: list[str] = []
    body = {"model": TEXT_MODEL, "input": {"prompt": "benchmark"}}
    apis = threading.local()

    def one() -> None:
        api = getattr(apis, "api", None) or stack.api()
        apis.api = api
        ids.append(stack.submit(body, api))

    total = rate * seconds
    start = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(one)
    stack.wait_runs(ids, timeout=120)
    with stack.db() as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM completed_at - created_at) * 1000, upstream_ms, queue_ms, status"
            " FROM inference_run WHERE id = ANY(%s::uuid[])", (ids,)).fetchall()
    added = [float(total_ms) - (up or 0) for total_ms, up, _q, st in rows if st == "succeeded"]
    queue = [float(q or 0) for _t, _u, q, st in rows if st == "succeeded"]
    upstream = [float(u or 0) for _t, u, _q, st in rows if st == "succeeded"]
    p50, p99 = pct(added, 50), pct(added, 99)
    r, ok = at_most(p50, 10)
    report.add(Figure("latency", "added latency p50", p50, "ms", "<= 10", None, r, ok,
                      f"{len(added)} runs at {rate}/s; queue_ms p50 {pct(queue, 50):.0f}"))
    r, ok = at_most(p99, 50)
    report.add(Figure("latency", "added latency p99", p99, "ms", "<= 50", None, r, ok,
                      f"upstream_ms p50 {pct(upstream, 50):.0f} (emulator 100)"))
    report.details["latency"] = {"runs": len(rows), "succeeded": len(added), "queue_ms_p50": pct(queue, 50),
                                 "queue_ms_p99": pct(queue, 99), "upstream_ms_p50": pct(upstream, 50),
                                 "added_ms_p50": p50, "added_ms_p99": p99}


def scenario_compat(stack: Stack, report: Report, quick: bool) -> None:
    """The Cloudflare-compatible endpoint vs the emulator called directly, both
    sequential at 0 ms emulator latency: the difference of the medians."""
    stack.emulator_config(latency_ms=0, image_noise=False)
    path = f"/client/v4/accounts/{ACCOUNT}/ai/run/{TEXT_MODEL}"
    body = {"prompt": "benchmark"}
    api = stack.api()
    status, data = api.request("POST", path, body)
    if status == 404 and not data.lstrip().startswith(b"{"):
        # Django's own 404 page: no such URL.  A JSON 404 is the endpoint answering.
        report.add(Figure("compat", "compat added latency p50", None, "ms", "<= 5", None, None, None,
                          "not available: the compatible endpoint is not in this build"))
        return
    if status != 200:
        report.add(Figure("compat", "compat added latency p50", None, "ms", "<= 5", None, None, False,
                          f"endpoint answered {status}: {data[:120]!r}"))
        return
    stack.ensure_worker()
    n = 30 if quick else 100
    emu = HTTP(stack.emulator_url, {"Authorization": f"Bearer {TOKEN}"})

    def timed(client: HTTP) -> list[float]:
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            st, _ = client.request("POST", path, body)
            out.append((time.perf_counter() - t0) * 1000)
            if st != 200:
                raise RuntimeError(f"{st}")
        return out

    direct = timed(emu)
    compat = timed(api)
    added = pct(compat, 50) - pct(direct, 50)
    r, ok = at_most(added, 5)
    report.add(Figure("compat", "compat added latency p50", added, "ms", "<= 5", pct(direct, 50), r, ok,
                      f"compat p50 {pct(compat, 50):.1f} ms vs direct {pct(direct, 50):.1f} ms"))
    report.details["compat"] = {"direct_p50_ms": pct(direct, 50), "compat_p50_ms": pct(compat, 50),
                                "compat_p99_ms": pct(compat, 99)}


def scenario_memory(stack: Stack, report: Report, quick: bool) -> None:
    """Worker RSS growth over 100 runs that each produce an ~8 MB PNG."""
    n = 25 if quick else 100
    stack.emulator_config(latency_ms=0, image_noise=True)
    stack.ensure_worker()
    stack.clear_runs()
    body = {"model": IMAGE_MODEL, "input": {"prompt": "noise", "width": IMAGE_SIDE, "height": IMAGE_SIDE}}
    api = stack.api()
    # Warm up: the first images size the allocator's arenas and the pools.
    warm = [stack.submit(body, api) for _ in range(4)]
    stack.wait_runs(warm, timeout=120)
    before = rss_mb(stack.worker_pids())
    peak = before
    ids: list[str] = []
    in_flight = 4
    for i in range(0, n, in_flight):
        batch = [stack.submit(body, api) for _ in range(min(in_flight, n - i))]
        ids.extend(batch)
        stack.wait_runs(batch, timeout=120)
        peak = max(peak, rss_mb(stack.worker_pids()))
    after = rss_mb(stack.worker_pids())
    with stack.db() as conn:
        sizes = conn.execute(
            "SELECT m.size FROM inference_runmedia m WHERE m.run_id = ANY(%s::uuid[]) AND m.role = 'output'",
            (ids,)).fetchall()
        ok_runs = conn.execute("SELECT count(*) FROM inference_run WHERE id = ANY(%s::uuid[]) AND status='succeeded'",
                               (ids,)).fetchone()[0]
    mean_mb = statistics.mean(s[0] for s in sizes) / 1e6 if sizes else 0.0
    growth = after - before
    r, ok = at_most(growth, 50)
    report.add(Figure("memory", "worker RSS growth", growth, "MB", "<= 50", before, r, ok and ok_runs == n,
                      f"{ok_runs}/{n} runs, images {mean_mb:.1f} MB, RSS {before:.0f} -> {after:.0f} MB, peak {peak:.0f}"))
    report.details["memory"] = {"runs": n, "succeeded": ok_runs, "image_mb": mean_mb, "rss_before_mb": before,
                                "rss_after_mb": after, "rss_peak_mb": peak}
    stack.emulator_config(image_noise=False)
    stack.clear_runs()


def scenario_s2s(stack: Stack, report: Report, quick: bool) -> None:
    """Submit-to-succeeded median over 100 sequential runs at 0 ms upstream latency."""
    n = 30 if quick else 100
    stack.emulator_config(latency_ms=0, image_noise=False)
    stack.ensure_worker()
    stack.clear_runs()
    api = stack.api()
    body = {"model": TEXT_MODEL, "input": {"prompt": "benchmark"}}
    observed = []
    ids = []
    with stack.db() as conn:
        for _ in range(n):
            t0 = time.perf_counter()
            run_id = stack.submit(body, api)
            while True:
                row = conn.execute("SELECT status FROM inference_run WHERE id = %s", (run_id,)).fetchone()
                if row and row[0] in TERMINAL:
                    break
                time.sleep(0.001)
            observed.append((time.perf_counter() - t0) * 1000)
            ids.append(run_id)
        rows = conn.execute(
            "SELECT extract(epoch FROM completed_at - created_at) * 1000, upstream_ms FROM inference_run"
            " WHERE id = ANY(%s::uuid[]) AND status = 'succeeded'", (ids,)).fetchall()
    stored = [float(r[0]) for r in rows]
    upstream = [float(r[1] or 0) for r in rows]
    report.add(Figure("s2s", "submit-to-succeeded median", pct(stored, 50), "ms", "report", None, None, None,
                      f"{len(rows)}/{n} sequential runs, emulator 0 ms; created_at→completed_at; "
                      f"client-observed p50 {pct(observed, 50):.1f} ms; upstream_ms p50 {pct(upstream, 50):.0f}"))
    report.details["s2s"] = {"runs": n, "succeeded": len(rows), "stored_p50_ms": pct(stored, 50),
                             "stored_p99_ms": pct(stored, 99), "observed_p50_ms": pct(observed, 50),
                             "upstream_ms_p50": pct(upstream, 50)}
    stack.emulator_config(latency_ms=stack.opts.latency_ms)


RUNNERS: dict[str, Callable[[Stack, Report, bool], None]] = {
    "submission": scenario_submission,
    "pipeline": scenario_pipeline,
    "latency": scenario_latency,
    "compat": scenario_compat,
    "memory": scenario_memory,
    "s2s": scenario_s2s,
}


# --- output ---------------------------------------------------------------------------------


def summarize_profile(paths: list[Path], top: int = 15) -> list[tuple[str, float]]:
    """Inclusive share of samples per frame of our code (py-spy raw, --gil: CPU)."""
    counts: dict[str, int] = {}
    total = 0
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            if not n.isdigit():
                continue
            total += int(n)
            seen = set()
            for frame in stack.split(";"):
                if "inference/" not in frame and "rest_framework/" not in frame:
                    continue
                name = frame.split(" (")[0] + " " + frame.rsplit("/", 1)[-1].rstrip(")")
                if name not in seen:
                    seen.add(name)
                    counts[name] = counts.get(name, 0) + int(n)
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
    return [(name, round(100 * c / max(total, 1), 1)) for name, c in ranked]


def table(report: Report) -> str:
    head = ("figure", "value", "unit", "target", "baseline", "ratio", "result")
    rows = [head]
    for f in report.figures:
        result = "n/a" if f.passed is None else ("PASS" if f.passed else "FAIL")
        if f.value is None and f.passed is None:
            result = "not available"
        rows.append((f.name, fmt(f.value), f.unit, f.target, fmt(f.baseline) if f.baseline is not None else "",
                     fmt(f.ratio) if f.ratio is not None else "", result))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    notes = [f"- {f.name}: {f.note}" for f in report.figures if f.note]
    return "\n".join(lines + [""] + notes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-s", "--scenario", action="append", choices=SCENARIOS,
                        help="run only this scenario (repeatable)")
    parser.add_argument("--quick", action="store_true", help="shorter windows and fewer runs")
    parser.add_argument("--profile", action="store_true", help="py-spy the worker/web during pipeline/submission")
    parser.add_argument("--db-url", default=os.environ.get("BENCH_DATABASE_URL",
                                                          "postgres://postgres@127.0.0.1:5432/cfai_bench"))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9"))
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn processes (default 2: one per core)")
    parser.add_argument("--web-threads", type=int, default=4, help="gthread threads per gunicorn process")
    parser.add_argument("--worker-pool", default="threads", choices=("threads", "prefork", "solo"))
    parser.add_argument("--worker-concurrency", type=int, default=32)
    parser.add_argument("--worker-procs", type=int, default=2, help="Celery worker processes")
    parser.add_argument("--latency-ms", type=int, default=100, help="emulator latency")
    parser.add_argument("--no-malloc-tuning", action="store_true",
                        help="run workers without MALLOC_MMAP_THRESHOLD_ (glibc's default)")
    parser.add_argument("--submitters", type=int, default=16, help="client threads submitting in 'pipeline'")
    parser.add_argument("--label", default="", help="a name for this run, kept in the JSON")
    args = parser.parse_args(argv)

    scenarios = args.scenario or list(SCENARIOS)
    opts = StackOptions(args.db_url, args.redis_url, args.web_workers, args.web_threads, args.worker_pool,
                        args.worker_concurrency, args.worker_procs, args.latency_ms, args.profile,
                        not args.no_malloc_tuning, args.submitters)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report = Report(
        started_at=stamp,
        options={**vars(args), "scenarios": scenarios},
        machine={"cpus": os.cpu_count(), "python": platform.python_version(),
                 "loadavg_at_start": os.getloadavg(), "host": platform.node()},
    )
    began = time.monotonic()
    stack = Stack(opts)
    interrupted = False
    try:
        log(f"stack: emulator :{stack.emulator_port}, gunicorn :{stack.web_port} "
            f"({args.web_workers}x{args.web_threads}), worker {args.worker_pool} "
            f"{args.worker_procs}x{args.worker_concurrency}, db {urlsplit(args.db_url).path.lstrip('/')}")
        stack.start_emulator()
        stack.prepare_database()
        stack.start_web()
        # Submission first: it needs the worker stopped (it would eat the cores).
        for name in [s for s in SCENARIOS if s in scenarios]:
            log(f"scenario {name}")
            t0 = time.monotonic()
            try:
                RUNNERS[name](stack, report, args.quick)
            except Exception as exc:
                log(f"  {name} failed: {exc!r}")
                report.add(Figure(name, name, None, "", "", None, None, False, f"error: {exc!r}"))
            report.details.setdefault("durations_s", {})[name] = round(time.monotonic() - t0, 1)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        stack.close(keep_logs=RESULTS / f"logs-{stamp}")
    report.details["total_s"] = round(time.monotonic() - began, 1)
    report.machine["loadavg_at_end"] = os.getloadavg()
    report.details["profiles"] = [str(p) for p in stack.profiles]
    for kind in ("web-submission", "worker-pipeline"):
        paths = [p for p in stack.profiles if kind in p.name]
        if paths:
            report.details[f"profile_{kind}"] = summarize_profile(paths)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{stamp}.json"
    data = asdict(report)
    out.write_text(json.dumps(data, indent=2, default=str))
    print()
    print(table(report))
    for kind in ("web-submission", "worker-pipeline"):
        if f"profile_{kind}" in report.details:
            print(f"\nCPU profile, {kind} (% of samples, inclusive):")
            for name, share in report.details[f"profile_{kind}"]:
                print(f"  {share:5.1f}%  {name}")
    print(f"\n{len(report.figures)} figures in {report.details['total_s']} s; JSON: {out.relative_to(ROOT)}")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
