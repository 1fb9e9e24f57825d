"""Start the Celery workers and the web server together; Ctrl-C stops them all."""
from __future__ import annotations

import signal
import subprocess
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

# Two workers, as a small deployment would run them: fine-tuning on its own, so that inference,
# imports and exports never wait behind a training run.
WORKERS = [
    ("demo-train", "training", []),
    # Embedded beat: the stale-run sweeper (project/sweeper.py). At scale, run one `celery beat`.
    ("demo", "default,inference", ["--beat", "--schedule", str(settings.VAR_DIR / "celerybeat-schedule")]),
]


class Command(BaseCommand):
    help = "Run the Celery workers (a training one and one for everything else) and the web server together."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000")

    def handle(self, *args, addr: str, **options):
        # `kill` (SIGTERM) stops the workers too, as Ctrl-C does, instead of leaving them behind.
        signal.signal(signal.SIGTERM, _interrupt)
        workers = [
            subprocess.Popen([sys.executable, "-m", "celery", "-A", "project", "worker", "-Q", queues,
                              "--concurrency", "1", "--loglevel", "INFO", "-n", f"{name}@%h", *extra],
                             cwd=settings.BASE_DIR)
            for name, queues, extra in WORKERS
        ]
        self.stdout.write(f"Celery workers started (pids {', '.join(str(w.pid) for w in workers)}); "
                          f"web server on http://{addr}/")
        try:
            call_command("runserver", addr, use_reloader=False)
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            for worker in workers:
                try:
                    worker.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    worker.kill()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
