"""Web latency at scale: a real server (gunicorn) on PostgreSQL with 100k image rows, concurrent clients.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_web .venv/bin/python bench/web.py

The project has an active model whose 20 predictions per image lie on the images the editor opens
and saves, as in daily use: each save keeps the predictions shown (score >= 0.3, the editor's
default) and draws the rest of its 50 boxes.

Measures p50/p95 of the queue page, the editor page and a 50-box save, and prints each p95 as a
ratio of its goal (queue < 150 ms, save < 100 ms; below 1.0 meets it) and of a baseline measured in
the same run (the login page: a template with no queries). The database named in DATABASE_URL is
created if missing and emptied first: point it at a throw-away database.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _django import REPO  # noqa: E402

GOALS_MS = {"queue page": 150, "save 50 boxes": 100}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300, help="per endpoint")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1),
                        help="gunicorn processes (README: two per core)")
    parser.add_argument("--threads", type=int, default=1, help="gunicorn threads per process (README: 1)")
    parser.add_argument("--only", choices=["queue", "editor", "save"], help="measure the baseline and this page only")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_web")
    if not url.startswith("postgres"):
        sys.exit("bench/web.py measures PostgreSQL: set DATABASE_URL=postgres://...")
    _create_database(url)
    os.environ.update({"DATABASE_URL": url, "DEBUG": "0", "SECRET_KEY": "bench-only-" + "x" * 40,
                       "ALLOWED_HOSTS": "127.0.0.1", "SECURE_SSL_REDIRECT": "0", "LOG_LEVEL": "WARNING",
                       "DJANGO_SETTINGS_MODULE": "project.settings"})
    from _django import setup

    var_dir = setup()
    session, token, project_id, image_ids, bodies = _fill(args.images, args.requests + _warm_up_calls(args) + 10)
    server_log = var_dir / "server.log"
    # The production server as the README deploys it: by default two single-threaded processes per core,
    # which kept p95 of the queue page at 1.2-1.5x its p50 where 2 processes x 4 threads gave 2-3x.
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "project.wsgi", "--bind", f"127.0.0.1:{args.port}",
                               "--workers", str(args.workers), "--threads", str(args.threads)], cwd=REPO, env=os.environ,
                              stdout=subprocess.DEVNULL, stderr=server_log.open("w"))
    base = f"http://127.0.0.1:{args.port}"
    try:
        _wait_up(base)
        page = {"Cookie": f"sessionid={session}"}
        api = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        targets = iter(image_ids)
        calls = {
            "queue page": lambda: _get(f"{base}/projects/{project_id}/queue/", page),
            "editor page": lambda: _get(f"{base}/images/{image_ids[0]}/edit", page),
            "save 50 boxes": lambda: _put(f"{base}/api/v1/images/{(pk := next(targets))}/boxes/", api, bodies[pk]),
        }
        results = {"baseline (login page)": _measure(args, lambda: _get(f"{base}/accounts/login/", {}), server.pid)}
        results |= {name: _measure(args, call, server.pid) for name, call in calls.items()
                    if args.only is None or name.startswith(args.only)}
        memory = _worker_rss_mib(server.pid)
    except urllib.error.HTTPError:
        print(server_log.read_text()[-3000:])
        raise
    finally:
        server.terminate()
        server.wait()
    baseline = results["baseline (login page)"][1]
    print(f"{args.images} images, {args.requests} requests per endpoint, {args.clients} concurrent clients, "
          f"gunicorn {args.workers} processes x {args.threads} threads, {os.cpu_count()} cores")
    for name, (p50, p95, cpu) in results.items():
        goal = f", p95/goal {p95 / GOALS_MS[name]:.2f}" if name in GOALS_MS else ""
        print(f"{name:24s} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  p95/baseline {p95 / baseline:5.2f}{goal}")
        print(f"{'':24s} CPU per request: server {cpu['server']:.1f} ms, PostgreSQL {cpu['postgres']:.1f} ms, "
              f"clients {cpu['clients']:.1f} ms")
    print(f"web processes after the run: {' / '.join(f'{rss:.0f}' for rss, _ in memory)} MiB resident, "
          f"torch loaded in {sum(torch for _, torch in memory)} of {len(memory)}")


def _create_database(url: str) -> None:
    import psycopg

    server, name = url.rsplit("/", 1)
    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def _fill(count: int, predicted: int) -> tuple[str, str, int, list[int], dict[int, dict]]:
    """One project with `count` image rows (their files are never read by these pages), a member, a token,
    an active model with 20 predictions on each of `predicted` images, and a save body for each of those."""
    import random

    from django.contrib.auth import get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from review.api_tokens import api_token_create

    from inference.models import ModelVersion, Prediction
    from review.models import Image, LabelClass
    from review.services import project_create

    user = get_user_model().objects.create_user("bench", password="bench-password-1")
    project = project_create(name="Bench", owner=user, class_names=["circle", "square", "triangle"])
    rng = random.Random(0)
    started = time.perf_counter()
    Image.objects.bulk_create([
        Image(project=project, file=f"projects/{project.pk}/images/{n:064x}.png", original_name=f"frame-{n}.png",
              width=640, height=480, content_hash=f"{n:064x}", split="train", priority=rng.random())
        for n in range(count)
    ], batch_size=5000)
    image_ids = list(Image.objects.filter(project=project).order_by("?").values_list("pk", flat=True)[:predicted])
    classes = list(LabelClass.objects.filter(project=project).order_by("index").values_list("pk", flat=True))
    version = ModelVersion.objects.create(project=project, number=1, architecture="fasterrcnn_mobilenet_v3_large_fpn",
                                          weights="bench-never-loaded.pt", class_names=["circle", "square", "triangle"],
                                          is_active=True)
    Prediction.objects.bulk_create([
        Prediction(image_id=pk, model_version=version, label_class_id=rng.choice(classes), x=rng.uniform(0, 500),
                   y=rng.uniform(0, 380), w=rng.uniform(8, 120), h=rng.uniform(8, 90), score=rng.random())
        for pk in image_ids for _ in range(20)
    ], batch_size=5000)
    print(f"inserted {count} image rows and {20 * len(image_ids)} predictions in {time.perf_counter() - started:.1f} s")
    from django.db import connection

    with connection.cursor() as cursor:  # what autovacuum would do soon after a bulk load
        cursor.execute("ANALYZE")
    session = SessionStore()
    session.update({"_auth_user_id": str(user.pk), "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
                    "_auth_user_hash": user.get_session_auth_hash()})
    session.create()
    bodies = {}
    for pk in image_ids:
        kept = [{"label_class": p.label_class_id, "x": p.x, "y": p.y, "w": p.w, "h": p.h, "source_prediction": p.pk}
                for p in Prediction.objects.filter(image_id=pk, score__gte=0.3)]
        drawn = [{"label_class": classes[0], "x": 1 + (n % 10) * 12, "y": 1 + (n // 10) * 12, "w": 10, "h": 10}
                 for n in range(50 - len(kept))]
        bodies[pk] = {"version": 1, "boxes": kept + drawn, "score_threshold": 0.3, "model_version": version.pk}
    return session.session_key, api_token_create(user=user), project.pk, image_ids, bodies


def _wait_up(base: str) -> None:
    for _ in range(100):
        try:
            _get(f"{base}/accounts/login/", {})
            return
        except OSError:
            time.sleep(0.2)
    sys.exit("the server did not start")


def _get(url: str, headers: dict) -> None:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as response:
        response.read()


def _put(url: str, headers: dict, body: dict) -> None:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="PUT")
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def _measure(args, call, server_pid: int) -> tuple[float, float, dict[str, float]]:
    """(p50, p95) in ms over args.requests calls from args.clients threads, after a short warm-up, and
    the CPU each request cost the server, the database and the clients (this process), in ms.

    With more clients than cores, latency is mostly waiting for a core: the CPU per request says
    what a change saved even when the machine's speed moves between runs.
    """
    with ThreadPoolExecutor(args.clients) as pool:  # every server process warm (templates, connections)
        list(pool.map(lambda _: call(), range(_warm_up_calls(args))))

    def timed(_):
        started = time.perf_counter()
        call()
        return (time.perf_counter() - started) * 1000

    before = _cpu_seconds(server_pid)
    with ThreadPoolExecutor(args.clients) as pool:
        times = list(pool.map(timed, range(args.requests)))
    after = _cpu_seconds(server_pid)
    cpu = {group: (after[group] - before.get(group, 0.0)) * 1000 / args.requests for group in after}
    return statistics.median(times), statistics.quantiles(times, n=20)[18], cpu


def _warm_up_calls(args) -> int:
    return 8 * args.workers


def _worker_rss_mib(server_pid: int) -> list[tuple[float, bool]]:
    """(resident MiB, whether torch's library is mapped) of each gunicorn worker process (Linux /proc)."""
    children = Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split()
    memory = []
    for pid in children:
        status = Path(f"/proc/{pid}/status").read_text()
        rss_kib = int(status.split("VmRSS:")[1].split()[0])
        memory.append((rss_kib / 1024, "libtorch" in Path(f"/proc/{pid}/maps").read_text()))
    return sorted(memory)


def _cpu_seconds(server_pid: int) -> dict[str, float]:
    """CPU time used so far by the server's processes, PostgreSQL's processes and this one (Linux /proc)."""
    totals = {"server": 0.0, "postgres": 0.0, "clients": sum(os.times()[:2])}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name, fields = (entry / "stat").read_text().rsplit(")", 1)
        except OSError:  # the process ended meanwhile
            continue
        fields = fields.split()
        group = ("server" if int(entry.name) == server_pid or int(fields[1]) == server_pid
                 else "postgres" if name.endswith("(postgres") else None)
        if group:
            totals[group] += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return totals


if __name__ == "__main__":
    main()
