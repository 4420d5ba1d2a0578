"""Seed 1,000,000 runs into a dedicated bench database and time the pages that
must stay fast at that size: GET /api/usage/?group_by=model for a month, the
admin run changelist and the usage dashboard (target: ≤ 200 ms each).

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/cfai_bench_cost \\
        python bench/usage_bench.py [--runs 1000000] [--reseed] [--repeat 7]

Runs are generated server-side with one set-based INSERT … SELECT over
generate_series (faster than COPY from Python: no row crosses the socket);
the daily rollup is then built with the same GROUP BY the service maintains
incrementally.  The database is reused between invocations unless --reseed.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/cfai_bench_cost"


def ensure_database(url: str, *, fresh: bool = False) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if fresh:  # --reseed: a new schema too, whatever migrations ran there before
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def seed(n: int) -> float:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from inference.catalog import MODELS
    from inference.models import Team

    started = time.monotonic()
    User = get_user_model()
    users = [User.objects.get_or_create(username=f"bench{i:03d}")[0].pk for i in range(200)]
    teams = [Team.objects.get_or_create(slug=f"team{i}", defaults={"name": f"Team {i}"})[0].pk for i in range(10)]
    models = [(m.name, m.task) for m in MODELS]
    with connection.cursor() as cur:
        cur.execute("TRUNCATE inference_run, inference_usagedaily CASCADE")
        cur.execute("DROP TABLE IF EXISTS bench_models")
        cur.execute("CREATE TEMP TABLE bench_models (i int, model text, task text)")
        cur.executemany("INSERT INTO bench_models VALUES (%s, %s, %s)", [(i, m, t) for i, (m, t) in enumerate(models)])
        cur.execute(
            """
            INSERT INTO inference_run (
                id, user_id, team_id, source, model, task, status, stream, input, result,
                error_message, usage, metadata, attempts, created_at, started_at, completed_at,
                queue_ms, upstream_ms, webhook, webhook_events, idempotency_key, request_hash,
                cost_usd, cost_neurons, cost_estimated, cost_reason, cost_prices, reserved_usd)
            SELECT
                md5(g::text || 'run')::uuid,
                (%(users)s::int[])[1 + u.i],
                CASE WHEN u.i %% 3 <> 0 THEN (%(teams)s::int[])[1 + u.i %% cardinality(%(teams)s::int[])] END,
                'api', bm.model, bm.task,
                CASE WHEN g %% 100 < 90 THEN 'succeeded' WHEN g %% 100 < 97 THEN 'failed' ELSE 'canceled' END,
                g %% 5 = 0,
                jsonb_build_object('prompt', 'benchmark prompt ' || g, 'max_tokens', 64),
                CASE WHEN g %% 100 < 90 THEN jsonb_build_object('response', 'ok') END,
                CASE WHEN g %% 100 >= 90 AND g %% 100 < 97 THEN 'upstream error' ELSE '' END,
                jsonb_build_object('prompt_tokens', 10 + g %% 50, 'completion_tokens', 20 + g %% 200),
                jsonb_build_object('ticket', 'T-' || (g %% 10000)),
                1, ts, ts + interval '20 ms', ts + interval '500 ms', 20, 480, '', '[]'::jsonb, '', '',
                CASE WHEN g %% 100 < 97 AND bm.i %% 4 <> 3 THEN ((10 + g %% 50) * 0.000000282 + (20 + g %% 200) * 0.000000827)::numeric(20,10) END,
                CASE WHEN g %% 100 < 97 AND bm.i %% 4 <> 3 THEN ((10 + g %% 50) * 0.025608 + (20 + g %% 200) * 0.075147)::numeric(24,6) END,
                false,
                CASE WHEN bm.i %% 4 = 3 THEN 'No price known' ELSE '' END,
                '[]'::jsonb, 0
            FROM generate_series(1, %(n)s) AS g
            CROSS JOIN LATERAL (SELECT now() - (g::double precision / %(n)s) * interval '90 days' AS ts) t
            -- each user calls three models of their own (as real callers do); two in
            -- three users belong to a team
            CROSS JOIN LATERAL (SELECT ((g::bigint * 7919) %% cardinality(%(users)s::int[]))::int AS i) u
            JOIN bench_models bm ON bm.i = (u.i * 7 + g %% 3) %% %(m)s
            """,
            {"users": users, "teams": teams, "n": n, "m": len(models)},
        )
        cur.execute(
            """
            INSERT INTO inference_usagedaily (
                day, user_id, team_id, model, task, runs, succeeded, failed, input_tokens,
                output_tokens, cost_usd, neurons, estimated_runs, unknown_cost_runs)
            SELECT (completed_at AT TIME ZONE %(tz)s)::date, user_id, team_id, model, task, count(*),
                   count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status = 'failed'),
                   sum((usage->>'prompt_tokens')::bigint), sum((usage->>'completion_tokens')::bigint),
                   coalesce(sum(cost_usd), 0), coalesce(sum(cost_neurons), 0),
                   count(*) FILTER (WHERE cost_estimated),
                   count(*) FILTER (WHERE cost_usd IS NULL)
            FROM inference_run WHERE status IN ('succeeded', 'failed')
            GROUP BY 1, 2, 3, 4, 5
            """,
            {"tz": os.environ.get("TZ_NAME", "UTC")},
        )
        cur.execute("ANALYZE inference_run")
        cur.execute("ANALYZE inference_usagedaily")
    return time.monotonic() - started


def timed(client, url: str, repeat: int) -> tuple[float, float, int]:
    response = client.get(url)  # warm-up (connection, template and query-plan caches)
    status = response.status_code
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url)
        if hasattr(response, "streaming_content"):
            b"".join(response.streaming_content)
        else:
            response.content  # noqa: B018
        samples.append((time.perf_counter() - started) * 1000)
        status = response.status_code
    return statistics.median(samples), max(samples), status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    ensure_database(url, fresh=args.reseed)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cfai_project.settings")
    os.environ["DJANGO_DEBUG"] = "0"  # no query log: measure what production runs
    # The production profile, over the in-process test client (plain HTTP).
    os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
    os.environ["DJANGO_SECURE_SSL_REDIRECT"] = "false"
    os.environ["DJANGO_SECURE_COOKIES"] = "false"
    os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,localhost")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.utils import timezone

    from inference.models import Run

    existing = Run.objects.count()
    if args.reseed or existing != args.runs:
        print(f"seeding {args.runs:,} runs …", flush=True)
        print(f"seeded in {seed(args.runs):.1f} s", flush=True)
    count = Run.objects.count()
    from inference.models import UsageDaily

    print(f"runs: {count:,}; daily usage rows: {UsageDaily.objects.count():,}", flush=True)
    if count != args.runs:
        print("the bench database does not hold the seeded runs (shared with another process?)")
        return 1

    User = get_user_model()
    staff, _ = User.objects.get_or_create(username="bench-admin", defaults={"is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(staff)
    today = timezone.localdate()
    since = today.replace(day=1)
    pages = {
        "GET /api/usage/?group_by=model (month, staff)": f"/api/usage/?group_by=model&since={since}&until={today}",
        "admin run changelist": "/admin/inference/run/",
        "admin usage dashboard (30 days)": "/admin/inference/usagedaily/dashboard/",
    }
    worst = 0.0
    print(f"{'page':<48} {'median ms':>10} {'max ms':>8}  status")
    for name, path in pages.items():
        median, peak, status = timed(client, path, args.repeat)
        worst = max(worst, median)
        print(f"{name:<48} {median:>10.1f} {peak:>8.1f}  {status}", flush=True)
    print(f"target ≤ 200 ms median: {'met' if worst <= 200 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
