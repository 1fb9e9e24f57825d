"""Start Django for a benchmark on throw-away storage: a temporary var/ (SQLite, media) unless
DATABASE_URL is set. Benchmarks run outside the test suite and never touch the real var/."""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def setup() -> Path:
    sys.path.insert(0, str(REPO))
    var_dir = Path(tempfile.mkdtemp(prefix="bench-var-"))
    os.environ.setdefault("VAR_DIR", str(var_dir))
    os.environ.setdefault("MEDIA_ROOT", str(var_dir / "media"))
    # As a production worker runs: with DEBUG on, Django quotes and keeps every query's parameters,
    # which on a GPU took a fifth of the time the prediction writer held the GIL.
    os.environ.setdefault("DEBUG", "0")
    os.environ.setdefault("SECRET_KEY", "benchmark-only-" + "x" * 40)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return var_dir


def rss_mib() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MiB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
