"""The learning loop, measured: how many corrections does each fine-tune save a reviewer?

    .venv/bin/python bench/loop.py          # starts a throw-away app (the demo's server and workers) and measures it
    .venv/bin/python bench/loop.py --url http://127.0.0.1:8000 --token KEY   # or drive a running app

A simulated reviewer uses the app only through its REST API, as a script user would (token auth;
no Django imports). The one piece of this repository it imports is the scene generator
(review/demo_images.py: numpy and Pillow), to draw the images and keep their true boxes.

1. A project gets labelled *source* (daylight) images through the import API, and a base model is
   trained on them (a training run, from scratch). Unlabelled images arrive: a pool of source and
   *shifted* (night) images, half and half, as a deployed camera would send them, plus holdout
   images of each domain that nobody reviews. The true boxes of everything unlabelled stay here.
2. Each round the reviewer takes K images in the app's own queue order (`ordering=priority`),
   reads the active model's predictions, corrects them to the truth with the editor's save request
   and counts what it had to change; then it starts a fine-tune, waits for it and for the new
   version's predictions, and scores the active model on the holdout images (pycocotools).
3. The same again in a second project with random order (same base weights, downloaded and
   uploaded through the API), to see what the app's priority order is worth.

The last line is `corrections_drop: X.XX` (1 - last round's corrections per image / the first
round's) for the app's order. Figures: docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from review.demo_images import CLASS_NAMES, generate_scene  # noqa: E402  (pure: numpy and Pillow)

SHOWN_SCORE = 0.3       # the editor's default score slider (static/review/editor.js): what the reviewer is shown
ACCEPT_IOU = 0.8        # a shown box this close to the truth is accepted as it is; below, it is moved
MATCH_IOU = 0.5         # below this a prediction is not the same object
ACTIVE_JOB = {"queued", "running"}
# Seeds far apart so that no two sets share a scene.
SEEDS = {"train": 0, "pool-source": 20_000, "pool-night": 10_000, "holdout-source": 40_000, "holdout-night": 30_000}


# --- The API, as any HTTP client sees it -------------------------------------------------------

class ApiError(RuntimeError):
    pass


class Api:
    def __init__(self, base_url: str, token: str) -> None:
        self.base = base_url.rstrip("/") + "/api/v1"
        self.headers = {"Authorization": f"Token {token}"}

    def call(self, method: str, path: str, body: dict | None = None, files: dict | None = None,
             raw: bool = False):
        headers = dict(self.headers)
        data = None
        if files is not None:
            data, headers["Content-Type"] = _multipart(body or {}, files)
        elif body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=600) as response:
                content = response.read()
        except urllib.error.HTTPError as exc:
            raise ApiError(f"{method} {path}: {exc.code} {exc.read()[:500]!r}") from None
        return content if raw else json.loads(content or b"null")

    def get(self, path: str):
        return self.call("GET", path)

    def post(self, path: str, body: dict | None = None, files: dict | None = None):
        return self.call("POST", path, body, files)

    def put(self, path: str, body: dict):
        return self.call("PUT", path, body)


def _multipart(fields: dict, files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, content) in files.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                  f"Content-Type: application/octet-stream\r\n\r\n".encode())
        out.write(content + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


# --- Data: generated scenes whose true boxes only this script knows ------------------------------

@dataclass(frozen=True)
class Truth:
    boxes: np.ndarray    # (n, 4) xyxy
    classes: list[str]


@dataclass
class Dataset:
    png: dict[str, bytes] = field(default_factory=dict)
    truth: dict[str, Truth] = field(default_factory=dict)

    def add(self, name: str, scene) -> None:
        self.png[name] = scene.png_bytes()
        self.truth[name] = Truth(np.array([[b.x, b.y, b.x + b.w, b.y + b.h] for b in scene.boxes],
                                          np.float64).reshape(-1, 4), [b.class_name for b in scene.boxes])


def make_data(args) -> Dataset:
    data = Dataset()
    plan = [("train", "source", args.source_images), ("pool-source", "source", args.pool),
            ("pool-night", "night", args.pool), ("holdout-source", "source", args.holdout),
            ("holdout-night", "night", args.holdout)]
    for group, domain, count in plan:
        for n in range(count):
            seed = SEEDS[group] + n
            data.add(f"{group}-{seed:05d}.png", generate_scene(seed, domain=domain, width=args.size,
                                                              height=args.size))
    return data


def names(data: Dataset, prefix: str) -> list[str]:
    return sorted(n for n in data.png if n.startswith(prefix))


def zip_of(files: dict[str, bytes], extra: dict[str, bytes] | None = None) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for name, content in {**files, **(extra or {})}.items():
            archive.writestr(name, content)
    return out.getvalue()


def coco_of(data: Dataset, image_names: list[str], size: int) -> bytes:
    images, annotations = [], []
    for image_id, name in enumerate(image_names, 1):
        images.append({"id": image_id, "file_name": name, "width": size, "height": size})
        truth = data.truth[name]
        for (x1, y1, x2, y2), cls in zip(truth.boxes.tolist(), truth.classes):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": CLASS_NAMES.index(cls) + 1,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    categories = [{"id": i + 1, "name": n} for i, n in enumerate(CLASS_NAMES)]
    return json.dumps({"images": images, "annotations": annotations, "categories": categories}).encode()


# --- The simulated reviewer -------------------------------------------------------------------

def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (n, 4) with every box in b (m, 4), xyxy."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda boxes: (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def correct(truth: Truth, shown: list[dict], class_ids: dict[str, int]) -> tuple[list[dict], dict[str, int]]:
    """The boxes a careful reviewer saves for `truth` given the shown predictions, and what they changed.

    Greedy one-to-one matching by IoU: a shown box on a true object (IoU >= 0.5) is kept: accepted
    as it is when it is close (IoU >= 0.8) and of the right class, otherwise moved and/or relabeled
    to the truth. Shown boxes on nothing are deleted; true objects nobody proposed are drawn.
    """
    predicted = np.array([[p["x"], p["y"], p["x"] + p["w"], p["y"] + p["h"]] for p in shown]).reshape(-1, 4)
    overlap = iou(predicted, truth.boxes)
    counts = {"accepted": 0, "moved": 0, "relabeled": 0, "deleted": 0, "added": 0}
    boxes, used_truth, used_shown = [], set(), set()
    for flat in np.argsort(-overlap, axis=None):
        p, t = np.unravel_index(flat, overlap.shape)
        if overlap[p, t] < MATCH_IOU:
            break
        if p in used_shown or t in used_truth:
            continue
        used_shown.add(p)
        used_truth.add(t)
        right_class = shown[p]["label_class"] == class_ids[truth.classes[t]]
        if right_class and overlap[p, t] >= ACCEPT_IOU:
            counts["accepted"] += 1
            box = {k: shown[p][k] for k in ("x", "y", "w", "h")}
        else:
            counts["relabeled" if not right_class else "moved"] += 1
            box = _xywh(truth.boxes[t])
        boxes.append({**box, "label_class": class_ids[truth.classes[t]], "source_prediction": shown[p]["id"]})
    counts["deleted"] = len(shown) - len(used_shown)
    for t in range(len(truth.boxes)):
        if t not in used_truth:
            counts["added"] += 1
            boxes.append({**_xywh(truth.boxes[t]), "label_class": class_ids[truth.classes[t]]})
    return boxes, counts


def _xywh(box: np.ndarray) -> dict:
    x1, y1, x2, y2 = (float(v) for v in box)
    return {"x": x1, "y": y1, "w": x2 - x1, "h": y2 - y1}


def corrections(counts: dict[str, int]) -> int:
    return counts["moved"] + counts["relabeled"] + counts["deleted"] + counts["added"]


def holdout_scores(truths: list[Truth], predictions: list[list[dict]], class_of: dict[int, str]) -> tuple[float, float]:
    """(AP50, mAP@[.5:.95]) of stored predictions against the truth, with pycocotools."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = {"images": [], "annotations": [], "categories": [{"id": i + 1, "name": n} for i, n in enumerate(CLASS_NAMES)]}
    detections = []
    for image_id, (truth, shown) in enumerate(zip(truths, predictions), 1):
        gt["images"].append({"id": image_id, "width": 1, "height": 1})
        for (x1, y1, x2, y2), cls in zip(truth.boxes.tolist(), truth.classes):
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": image_id, "iscrowd": 0,
                                      "category_id": CLASS_NAMES.index(cls) + 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
                                      "area": (x2 - x1) * (y2 - y1)})
        detections += [{"image_id": image_id, "category_id": CLASS_NAMES.index(class_of[p["label_class"]]) + 1,
                        "bbox": [p["x"], p["y"], p["w"], p["h"]], "score": p["score"]} for p in shown]
    if not detections:
        return 0.0, 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        evaluator = COCOeval(coco, coco.loadRes(detections), iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return max(float(evaluator.stats[1]), 0.0), max(float(evaluator.stats[0]), 0.0)


# --- One project's loop ---------------------------------------------------------------------

@dataclass
class Row:
    round: int
    reviewed: int
    night_ap50: float
    night_map: float
    source_ap50: float
    source_map: float
    corrections_per_image: float | None
    night_share: float | None       # of this round's reviewed images
    version: int
    seconds: float


class Loop:
    def __init__(self, api: Api, data: Dataset, args, order: str) -> None:
        self.api, self.data, self.args, self.order = api, data, args, order
        self.started = time.monotonic()
        self.rows: list[Row] = []

    def say(self, text: str) -> None:
        print(f"  [{self.order} {time.monotonic() - self.started:6.0f}s] {text}", flush=True)

    def create(self, base: tuple[bytes, str] | None) -> None:
        project = self.api.post("/projects/", {"name": f"loop-{self.order}-{secrets.token_hex(3)}",
                                               "class_names": list(CLASS_NAMES)})
        self.project = project["id"]
        self.api.call("PATCH", f"/projects/{self.project}/", {"infer_on_upload": False})
        classes = self.api.get(f"/projects/{self.project}/label-classes/")
        classes = classes["results"] if isinstance(classes, dict) else classes
        self.class_ids = {c["name"]: c["id"] for c in classes}
        self.class_of = {c["id"]: c["name"] for c in classes}
        train = names(self.data, "train-")
        self.say(f"importing {len(train)} labelled source images (COCO zip)")
        job = self.api.post(f"/projects/{self.project}/imports/", {"format": "coco"}, files={"file": (
            "source.zip", zip_of({n: self.data.png[n] for n in train},
                                 {"labels.json": coco_of(self.data, train, self.args.size)}))})
        job = self.wait(f"/imports/{job['id']}/", "import")
        self.ids: dict[str, int] = {}
        unlabelled = names(self.data, "pool-") + names(self.data, "holdout-")
        self.say(f"uploading {len(unlabelled)} unlabelled images (pool and holdout, source and night)")
        report = self.api.post(f"/projects/{self.project}/images/zip/", {}, files={"archive": (
            "camera.zip", zip_of({n: self.data.png[n] for n in unlabelled}))})
        self.ids = {row["name"]: row["id"] for row in report["added"]}
        if len(self.ids) != len(unlabelled):
            raise ApiError(f"upload added {len(self.ids)} of {len(unlabelled)} images: {report}")
        if base is None:
            self.say(f"training the base model from scratch ({self.args.base_epochs} epochs)")
            run = self.api.post(f"/projects/{self.project}/training-runs/",
                                {"epochs": self.args.base_epochs, "learning_rate": self.args.base_lr,
                                 **({"batch_size": self.args.base_batch_size} if self.args.base_batch_size else {}),
                                 **self.image_size()})
            self.wait(f"/training-runs/{run['id']}/", "base training")
        else:
            self.say("uploading the same base weights")
            weights, architecture = base
            self.api.post(f"/projects/{self.project}/model-versions/", {"architecture": architecture,
                                                                          "activate": "true", "note": "base"},
                          files={"weights": ("base.safetensors", weights)})
            self.api.post(f"/projects/{self.project}/inference-runs/", {"scope": "unreviewed"})
        self.wait_inference()
        self.score(round_=0, reviewed=0, counts=None, night_share=None)

    def image_size(self) -> dict:
        return {"image_size": self.args.image_size} if self.args.image_size else {}

    def active_weights(self) -> tuple[bytes, str]:
        version = self.api.get(f"/projects/{self.project}/")["active_model"]["id"]
        architecture = self.api.get(f"/model-versions/{version}/")["architecture"]
        return self.api.call("GET", f"/model-versions/{version}/weights/", raw=True), architecture

    def wait(self, path: str, what: str) -> dict:
        last = None
        while True:
            job = self.api.get(path)
            if job["status"] not in ACTIVE_JOB:
                break
            tenth = int(job.get("percent") or 0) // 10
            if tenth != last:
                self.say(f"{what}: {tenth * 10}%")
                last = tenth
            time.sleep(1)
        if job["status"] != "succeeded":
            raise ApiError(f"{what} ended {job['status']}: {job.get('error')}")
        return job

    def wait_inference(self) -> None:
        while True:
            runs = self.api.get(f"/projects/{self.project}/inference-runs/?page_size=50")["results"]
            if not any(r["status"] in ACTIVE_JOB for r in runs):
                failed = [r for r in runs if r["status"] == "failed"]
                if failed:
                    raise ApiError(f"inference failed: {failed[0]['error']}")
                return
            time.sleep(1)

    def next_images(self, reviewed: set[int]) -> list[int]:
        pool = {self.ids[n] for n in names(self.data, "pool-")}
        if self.order == "random":
            order = sorted(pool)
            random.Random(self.args.seed).shuffle(order)
            return [i for i in order if i not in reviewed][:self.args.per_round]
        picked, cursor = [], f"/projects/{self.project}/images/?status=unreviewed&ordering=priority&page_size=100"
        while cursor and len(picked) < self.args.per_round:
            page = self.api.get(cursor)
            picked += [row["id"] for row in page["results"] if row["id"] in pool]  # holdout images are never reviewed
            cursor = page["next"] and page["next"].split("/api/v1", 1)[1]
        return picked[:self.args.per_round]

    def review(self, image_ids: list[int]) -> dict[str, int]:
        name_of = {v: k for k, v in self.ids.items()}
        total = {"accepted": 0, "moved": 0, "relabeled": 0, "deleted": 0, "added": 0}
        for image_id in image_ids:
            image = self.api.get(f"/images/{image_id}/")
            shown = [p for p in image["predictions"] if p["score"] >= SHOWN_SCORE]
            boxes, counts = correct(self.data.truth[name_of[image_id]], shown, self.class_ids)
            self.api.put(f"/images/{image_id}/boxes/", {"version": image["version"], "boxes": boxes,
                                                        "model_version": image["model_version"],
                                                        "score_threshold": SHOWN_SCORE, "seconds_spent": 0})
            for key, value in counts.items():
                total[key] += value
        return total

    def score(self, *, round_: int, reviewed: int, counts: dict | None, night_share: float | None,
              images: int = 0) -> Row:
        figures = []
        for domain in ("night", "source"):
            holdout = names(self.data, f"holdout-{domain}")
            shown = [self.api.get(f"/images/{self.ids[n]}/")["predictions"] for n in holdout]
            figures += holdout_scores([self.data.truth[n] for n in holdout], shown, self.class_of)
        version = self.api.get(f"/projects/{self.project}/")["active_model"]["number"]
        row = Row(round_, reviewed, *figures, counts and corrections(counts) / max(images, 1), night_share, version,
                  time.monotonic() - self.started)
        self.rows.append(row)
        return row

    def run_rounds(self) -> None:
        reviewed: set[int] = set()
        night = {self.ids[n] for n in names(self.data, "pool-night")}
        for round_ in range(1, self.args.rounds + 1):
            picked = self.next_images(reviewed)
            counts = self.review(picked)
            reviewed |= set(picked)
            share = len(night & set(picked)) / max(len(picked), 1)
            self.say(f"round {round_}: reviewed {len(picked)} ({share:.0%} night), "
                     f"{corrections(counts) / max(len(picked), 1):.2f} corrections per image {counts}")
            run = self.api.post(f"/projects/{self.project}/training-runs/",
                                {**({"epochs": self.args.finetune_epochs} if self.args.finetune_epochs else {}),
                                 **self.image_size()})
            run = self.wait(f"/training-runs/{run['id']}/", f"fine-tune {round_}")
            self.say(f"fine-tune {round_}: {run['comparison'].get('reason')}")
            self.wait_inference()
            self.score(round_=round_, reviewed=len(reviewed), counts=counts, night_share=share, images=len(picked))


# --- A throw-away app: the demo's own server and workers on a temporary var/ ------------------

@contextlib.contextmanager
def local_app(port: int):
    var_dir = Path(tempfile.mkdtemp(prefix="bench-loop-"))
    # The embedded defaults (SQLite, filesystem broker), as `make demo` runs them.
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update({"VAR_DIR": str(var_dir), "MEDIA_ROOT": str(var_dir / "media"), "DEBUG": "1", "LOG_LEVEL": "WARNING",
                "DJANGO_SUPERUSER_PASSWORD": secrets.token_urlsafe(12)})
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v", "0"], cwd=REPO, env=env, check=True)
    subprocess.run([*manage, "createsuperuser", "--noinput", "--username", "reviewer", "--email", "r@example.com"],
                   cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
    token = subprocess.run([*manage, "api_token_create", "reviewer"], cwd=REPO, env=env, check=True,
                           capture_output=True, text=True).stdout.strip()
    log = (var_dir / "app.log").open("w")
    app = subprocess.Popen([*manage, "rundemo", "--addr", f"127.0.0.1:{port}"], cwd=REPO, env=env,
                           stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            with contextlib.suppress(OSError):
                urllib.request.urlopen(base + "/accounts/login/", timeout=2)
                break
            time.sleep(0.5)
        print(f"app on {base} (var: {var_dir}; log: {var_dir / 'app.log'})", flush=True)
        yield base, token
    finally:
        app.send_signal(signal.SIGTERM)
        try:
            app.wait(timeout=30)
        except subprocess.TimeoutExpired:
            app.kill()


# --- Report -------------------------------------------------------------------------------

def table(loop: Loop) -> str:
    lines = [f"order: {loop.order}",
             "round  reviewed  version  night AP50  night mAP  source AP50  source mAP  corrections/img  night share  time"]
    for r in loop.rows:
        corr = f"{r.corrections_per_image:15.2f}" if r.corrections_per_image is not None else f"{'-':>15}"
        share = f"{r.night_share:11.0%}" if r.night_share is not None else f"{'-':>11}"
        lines.append(f"{r.round:5d}  {r.reviewed:8d}  {r.version:7d}  {r.night_ap50:10.3f}  {r.night_map:9.3f}  "
                     f"{r.source_ap50:11.3f}  {r.source_map:10.3f}  {corr}  {share}  {r.seconds:4.0f}s")
    return "\n".join(lines)


def drop(loop: Loop) -> float:
    rounds = [r for r in loop.rows if r.corrections_per_image is not None]
    first, last = rounds[0].corrections_per_image, rounds[-1].corrections_per_image
    return 1 - last / first if first else 0.0


def images_to_reach(loop: Loop, target: float) -> int | None:
    return next((r.reviewed for r in loop.rows if r.night_map >= target), None)


def report(loops: dict[str, Loop], minutes: float) -> None:
    for loop in loops.values():
        print(table(loop))
        print()
    app = loops["priority"]
    base, final = app.rows[0], app.rows[-1]
    print(f"goal: corrections per image drop >= 60% after {len(app.rows) - 1} rounds: {drop(app):.2f} "
          f"(random order: {drop(loops['random']):.2f})" if "random" in loops else
          f"goal: corrections per image drop >= 60%: {drop(app):.2f}")
    print(f"goal: night holdout AP50 +0.50: {base.night_ap50:.3f} -> {final.night_ap50:.3f} "
          f"({final.night_ap50 - base.night_ap50:+.3f})")
    print(f"goal: source holdout AP50 falls <= 0.05: {base.source_ap50:.3f} -> {final.source_ap50:.3f} "
          f"({final.source_ap50 - base.source_ap50:+.3f})")
    if "random" in loops:
        target = loops["random"].rows[-1]
        needed = images_to_reach(app, target.night_map)
        saving = 1 - needed / target.reviewed if needed else 0.0
        print(f"goal: priority order reaches random order's final night mAP ({target.night_map:.3f} after "
              f"{target.reviewed} images) with >= 30% fewer images: "
              + (f"after {needed} images, {saving:.0%} fewer" if needed else "not reached"))
    print(f"run time: {minutes:.1f} min")
    print(f"corrections_drop: {drop(app):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running app (default: start a throw-away one)")
    parser.add_argument("--token", help="API token of a user who may create projects (with --url)")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-round", type=int, default=50)
    parser.add_argument("--source-images", type=int, default=120, help="labelled source images for the base model")
    parser.add_argument("--pool", type=int, default=150, help="unlabelled images per domain (source and night)")
    parser.add_argument("--holdout", type=int, default=50, help="holdout images per domain")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    parser.add_argument("--base-epochs", type=int, default=24)
    parser.add_argument("--base-lr", type=float, default=2e-3)
    parser.add_argument("--base-batch-size", type=int,
                        help="default: the app's; from scratch on a few images, the steps count, not the epochs")
    parser.add_argument("--finetune-epochs", type=int, help="default: the app's own (what the Fine-tune button uses)")
    parser.add_argument("--image-size", type=int, default=224,
                        help="the model input size (SSD: a square; 224 trains twice as fast as 320 on a CPU)")
    parser.add_argument("--orders", default="priority,random", help="priority, random or both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write every order's rows here")
    args = parser.parse_args()
    started = time.monotonic()
    data = make_data(args)
    with (contextlib.nullcontext((args.url, args.token)) if args.url else local_app(args.port)) as (url, token):
        api = Api(url, token)
        loops, base = {}, None
        for order in args.orders.split(","):
            loop = loops[order] = Loop(api, data, args, order)
            loop.create(base)
            base = base or loop.active_weights()  # every order starts from the same base model
            loop.run_rounds()
    report(loops, (time.monotonic() - started) / 60)
    if args.json:
        args.json.write_text(json.dumps({order: [asdict(row) for row in loop.rows] for order, loop in loops.items()},
                                        indent=1))


if __name__ == "__main__":
    main()
