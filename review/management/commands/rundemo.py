"""Start a Celery worker and the web server together; Ctrl-C stops both."""
from __future__ import annotations

import signal
import subprocess
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run a Celery worker (all queues) and the web server on 127.0.0.1:8000 together."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000")

    def handle(self, *args, addr: str, **options):
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "project", "worker", "-Q", "default,inference,training",
             "--concurrency", "1", "--loglevel", "INFO", "-n", "demo@%h",
             # Embedded beat: the stale-run sweeper (project/sweeper.py). At scale, run one `celery beat`.
             "--beat", "--schedule", str(settings.VAR_DIR / "celerybeat-schedule")],
            cwd=settings.BASE_DIR,
        )
        self.stdout.write(f"Celery worker started (pid {worker.pid}); web server on http://{addr}/")
        try:
            call_command("runserver", addr, use_reloader=False)
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
