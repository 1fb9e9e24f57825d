"""The learning loop, end to end and small: bench/loop.py's simulated reviewer drives a real server and
real workers only through the REST API, for one round, and the fine-tuned model must beat the base
model on the shifted (night) holdout images it has never been given labels for."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# About 110-125 s on an idle 2-core machine: more than the suite's default 300 s limit allows for a
# busy one (CI once took 2x as long throughout). The subprocess's own limit below is the one meant.
@pytest.mark.long
@pytest.mark.timeout(960)
def test_one_round_of_corrections_makes_the_model_better_on_the_new_domain(tmp_path):
    rows_file = tmp_path / "rows.json"
    # Tiny images at a small SSD input: the base learns daylight shapes in about a minute. From scratch,
    # the steps count: 30 epochs of 4 images learn what 60 of 8 do (source AP50 0.77) in 3/4 of the time.
    command = [sys.executable, "bench/loop.py", "--orders", "priority", "--rounds", "1", "--per-round", "16",
               "--source-images", "40", "--pool", "16", "--holdout", "16", "--size", "128", "--image-size", "160",
               "--base-epochs", "30", "--base-batch-size", "4", "--base-lr", "0.003", "--finetune-epochs", "12",
               "--port", str(free_port()),
               "--json", str(rows_file)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    base, tuned = json.loads(rows_file.read_text())["priority"]
    # The base model is blind at night; one round of 16 corrected images (mostly night: the app's
    # priority puts the images where the model found nothing first) teaches it.
    assert tuned["reviewed"] == 16 and tuned["night_share"] >= 0.75, done.stdout
    assert tuned["night_ap50"] >= base["night_ap50"] + 0.2, done.stdout
    assert tuned["version"] > base["version"], done.stdout  # promoted by the app's own holdout gate
    assert "corrections_drop:" in done.stdout
