"""Web latency at scale: a real server (gunicorn) on PostgreSQL with 100k image rows, concurrent clients.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_web .venv/bin/python bench/web.py

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
    session, token, project_id, image_ids = _fill(args.images)
    server_log = var_dir / "server.log"
    # The production server, as the README deploys it: 2 processes (one per core) with 4 threads each.
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "project.wsgi", "--bind", f"127.0.0.1:{args.port}",
                               "--workers", "2", "--threads", "4"], cwd=REPO, env=os.environ,
                              stdout=subprocess.DEVNULL, stderr=server_log.open("w"))
    base = f"http://127.0.0.1:{args.port}"
    try:
        _wait_up(base)
        page = {"Cookie": f"sessionid={session}"}
        api = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        boxes = [{"label_class": _class_id(project_id), "x": 1 + (n % 10) * 12, "y": 1 + (n // 10) * 12, "w": 10,
                  "h": 10} for n in range(50)]
        targets = iter(image_ids)
        results = {
            "baseline (login page)": _measure(args, lambda: _get(f"{base}/accounts/login/", {})),
            "queue page": _measure(args, lambda: _get(f"{base}/projects/{project_id}/queue/", page)),
            "editor page": _measure(args, lambda: _get(f"{base}/images/{image_ids[0]}/edit", page)),
            "save 50 boxes": _measure(args, lambda: _put(f"{base}/api/v1/images/{next(targets)}/boxes/", api,
                                                         {"version": 1, "boxes": boxes})),
        }
    except urllib.error.HTTPError:
        print(server_log.read_text()[-3000:])
        raise
    finally:
        server.terminate()
        server.wait()
    baseline = results["baseline (login page)"][1]
    print(f"{args.images} images, {args.requests} requests per endpoint, {args.clients} concurrent clients")
    for name, (p50, p95) in results.items():
        goal = f", p95/goal {p95 / GOALS_MS[name]:.2f}" if name in GOALS_MS else ""
        print(f"{name:24s} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  p95/baseline {p95 / baseline:5.2f}{goal}")


def _create_database(url: str) -> None:
    import psycopg

    server, name = url.rsplit("/", 1)
    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def _fill(count: int) -> tuple[str, str, int, list[int]]:
    """One project with `count` image rows (their files are never read by these pages), a member, a token."""
    import random

    from django.contrib.auth import get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from rest_framework.authtoken.models import Token

    from review.models import Image
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
    print(f"inserted {count} image rows in {time.perf_counter() - started:.1f} s")
    from django.db import connection

    with connection.cursor() as cursor:  # what autovacuum would do soon after a bulk load
        cursor.execute("ANALYZE")
    session = SessionStore()
    session.update({"_auth_user_id": str(user.pk), "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
                    "_auth_user_hash": user.get_session_auth_hash()})
    session.create()
    image_ids = list(Image.objects.filter(project=project).order_by("?").values_list("pk", flat=True)[:5000])
    return session.session_key, Token.objects.create(user=user).key, project.pk, image_ids


def _class_id(project_id: int) -> int:
    from review.models import LabelClass

    return LabelClass.objects.filter(project_id=project_id).order_by("index").values_list("pk", flat=True)[0]


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


def _measure(args, call) -> tuple[float, float]:
    """(p50, p95) in ms over args.requests calls from args.clients threads, after a short warm-up."""
    for _ in range(5):
        call()

    def timed(_):
        started = time.perf_counter()
        call()
        return (time.perf_counter() - started) * 1000

    with ThreadPoolExecutor(args.clients) as pool:
        times = list(pool.map(timed, range(args.requests)))
    return statistics.median(times), statistics.quantiles(times, n=20)[18]


if __name__ == "__main__":
    main()
