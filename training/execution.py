"""The worker side of fine-tuning: train on a snapshot, evaluate on its holdout, gate the promotion.

A failure at any point leaves the active model as it was: a new version is registered, and maybe
activated, only after training and both evaluations have finished.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import replace

import numpy as np
import torch
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from inference import detector
from inference.matching import ImagePredictions, ImageTruth
from inference.models import InferenceScope, ModelSource, Prediction
from inference.pipeline import predict_stream
from inference.services import inference_run_create, model_version_activate, model_version_create
from project.jobs import JobProgress, JobStatus, job_attempt_start, job_finish, job_heartbeat
from project.storage import storage_reader
from review.models import Image, LabelClass, ReviewStatus
from review.tags import images_by_tag
from training.config import TrainConfig, steps_per_epoch
from training.evaluation import (EvalResult, classes_without_truth, coco_evaluate, map_gain_interval, map_of_groups,
                                 tag_change_fields, tag_changes)
from training.models import TrainingRun, checkpoint_storage_name
from training.operating_points import best_f1_summary, operating_points
from training.services import snapshot_freeze, training_size_check
from training.trainer import Checkpoint, StepReport, Stop, TrainSample, train

logger = logging.getLogger(__name__)
# The boxes a run judges each model by are the ones inference stores (torchvision's own default, 0.05), so
# the mAP a run reports, per tag too, is the one Compare and error review find from the stored predictions.
EVAL_SCORE_THRESHOLD = detector.STORE_SCORE_FLOOR
LOSS_HISTORY_LIMIT = 5000


def checkpoint_name(run: TrainingRun) -> str:
    return checkpoint_storage_name(run.project_id, run.pk)


def training_run_execute(*, run_id: int) -> None:
    run = job_attempt_start(TrainingRun, run_id=run_id)
    if run is None:
        return
    try:
        with job_heartbeat(run):
            _execute(run)
    except Stop:
        job_finish(run, status=JobStatus.CANCELLED)
    except ValidationError as exc:  # too few reviewed images left by the time it started: said as at the start
        job_finish(run, status=JobStatus.FAILED, error=" ".join(exc.messages))
    except Exception as exc:  # the run row must say what went wrong; the active model is untouched
        logger.exception("training run %s failed", run_id)
        job_finish(run, status=JobStatus.FAILED, error=f"Training failed: {type(exc).__name__}: {exc}")
    finally:
        # Kept only for a run that can resume: not one that ended, nor one deleted with its project.
        if not TrainingRun.objects.filter(pk=run_id).exclude(
                status__in=[JobStatus.SUCCEEDED, JobStatus.CANCELLED]).exists():
            default_storage.delete(checkpoint_name(run))


def _class_names_now(run: TrainingRun, categories: list[dict]) -> list[str]:
    """The snapshot's classes under the names they have now. Models know classes by name, so a class
    renamed since the snapshot was frozen (or while the run trained) must reach the new version by its
    new name, as it reached the older versions; a class keeps its index for life. Snapshots frozen
    before categories carried the index keep their names."""
    now = dict(LabelClass.objects.filter(project_id=run.project_id).values_list("index", "name"))
    return [now.get(category.get("index"), category["name"]) for category in categories]


def _snapshot_data(run: TrainingRun) -> tuple[list[TrainSample], list[ImageTruth], dict[int, str], list[dict]]:
    with run.snapshot.file.open("rb") as handle:
        coco = json.load(handle)
    boxes: dict[int, list] = {}
    for a in coco["annotations"]:
        x, y, w, h = a["bbox"]
        boxes.setdefault(a["image_id"], []).append((x, y, x + w, y + h, a["category_id"]))
    samples, truths, files = [], [], {}
    for image in coco["images"]:
        rows = np.array(boxes.get(image["id"], []), dtype=np.float64).reshape(-1, 5)
        xyxy, labels = rows[:, :4].astype(np.float32), rows[:, 4].astype(np.int64)
        files[image["id"]] = image["file_name"]
        if image["split"] == "train":
            samples.append(TrainSample(storage_reader(image["file_name"]), xyxy, labels))
        else:
            truths.append(ImageTruth(image["id"], image["width"], image["height"], xyxy, labels))
    return samples, truths, files, coco["categories"]


def evaluate_model(model: detector.Detector, truths: list[ImageTruth], files: dict[int, str],
                   class_names: list[str], *, model_class_names: list[str] | None = None,
                   with_operating_point: bool = False) -> EvalResult:
    """COCO mAP of one model on the holdout images of a snapshot; with `with_operating_point`, also
    the score threshold with the best F1 (overall and per class), which a deployment is told.

    A model trained before the project's classes changed (`model_class_names`) is judged on the
    snapshot's classes by name: a class it does not know, it finds nowhere.
    """
    ids = {name: j + 1 for j, name in enumerate(class_names)}
    # the model's class id -> the snapshot's (0: a class the snapshot no longer has)
    translate = np.array([0] + [ids.get(name, 0) for name in (model_class_names or class_names)], dtype=np.int64)
    items = [(t.image_id, storage_reader(files[t.image_id])) for t in truths]
    predictions = []
    for batch in predict_stream(items, model, batch_size=8):
        for r in batch:
            if r.detections is None:
                continue
            labels = translate[r.detections.labels]
            kept = labels > 0
            predictions.append(ImagePredictions(r.key, r.detections.boxes_xyxy[kept], labels[kept],
                                                r.detections.scores[kept]))
    result = coco_evaluate(truths, predictions, class_names)
    if not with_operating_point:
        return result
    by_image = {p.image_id: p for p in predictions}
    judged = [t for t in truths if t.image_id in by_image]  # an image that failed to decode has nothing to judge
    curves = operating_points(judged, [by_image[t.image_id] for t in judged], class_names)
    return replace(result, operating_point=best_f1_summary(curves))


def _freeze_labels(run: TrainingRun, config: TrainConfig) -> None:
    """Freeze the reviewed labels for a run that has no snapshot yet (a resumed one keeps its own): here, not
    when the run was asked for, as it takes seconds on a large project. The labels may have changed since
    they were counted: the minimums are checked again, and the progress bar gets the real step count."""
    if run.snapshot_id is not None:
        return
    snapshot = snapshot_freeze(project=run.project, user=run.requested_by)
    training_size_check(training=len(snapshot.train_image_ids), holdout=len(snapshot.holdout_image_ids))
    run.snapshot = snapshot
    run.progress_total = config.epochs * steps_per_epoch(len(snapshot.train_image_ids), config.batch_size)
    TrainingRun.objects.filter(pk=run.pk).update(snapshot=snapshot, progress_total=run.progress_total)


def _execute(run: TrainingRun) -> None:
    config = TrainConfig(**run.params)
    _freeze_labels(run, config)
    samples, truths, files, categories = _snapshot_data(run)
    class_names = _class_names_now(run, categories)
    device = detector.default_device()
    TrainingRun.objects.filter(pk=run.pk).update(device=str(device))

    base = run.base_version
    initial_state = None
    if base is not None:
        with base.weights.open("rb") as handle:
            initial_state = detector.state_dict_from_bytes(handle.read())
    resume = None
    if default_storage.exists(checkpoint_name(run)):
        with default_storage.open(checkpoint_name(run), "rb") as handle:
            resume = Checkpoint.from_bytes(handle.read())
        logger.info("training run %s resumes after epoch %s", run.pk, resume.epoch)

    done_steps = (resume.epoch if resume else 0) * steps_per_epoch(len(samples), config.batch_size)
    loss_history = [row for row in run.loss_history if row["step"] <= done_steps]
    eval_history = [row for row in run.eval_history if resume and row["epoch"] <= resume.epoch]
    TrainingRun.objects.filter(pk=run.pk).update(progress_done=done_steps, loss_history=loss_history,
                                                 eval_history=eval_history)
    progress = JobProgress(run)
    started = time.monotonic()
    # Steady-state throughput: time between consecutive steps (our callbacks included), so the
    # first step of each epoch, which follows that epoch's evaluation, is not counted.
    pace = {"last": None, "seconds": 0.0, "images": 0}

    def on_step(report: StepReport) -> None:
        now = time.monotonic()
        if pace["last"] is not None:
            pace["seconds"] += now - pace["last"]
            pace["images"] += report.images
        loss_history.append({"step": report.step, "epoch": report.epoch, "loss": round(report.loss, 5)})
        del loss_history[:-LOSS_HISTORY_LIMIT]
        seconds_per_step = (now - started) / max(report.step - done_steps, 1)
        rate = pace["images"] / pace["seconds"] if pace["seconds"] else None
        progress.add(1, loss_history=list(loss_history), images_per_second=rate and round(rate, 2),
                     eta_seconds=round(seconds_per_step * (report.total_steps - report.step), 1))
        pace["last"] = time.monotonic()
        if progress.cancelled():
            raise Stop()

    def on_epoch(epoch: int, model: torch.nn.Module, checkpoint: Checkpoint) -> None:
        result = evaluate_model(detector.Detector(model, device=device, score_threshold=EVAL_SCORE_THRESHOLD),
                                truths, files, class_names)
        eval_history.append({"epoch": epoch, "map": round(result.map, 4), "ap50": round(result.ap50, 4)})
        default_storage.delete(checkpoint_name(run))
        default_storage.save(checkpoint_name(run), ContentFile(checkpoint.to_bytes()))
        progress.add(0, epoch=epoch, eval_history=list(eval_history))
        progress.flush()
        pace["last"] = None

    model = train(architecture=run.architecture, class_names=class_names, samples=samples, config=config,
                  initial_state=initial_state, initial_class_names=base and list(base.class_names), resume=resume,
                  on_step=on_step, on_epoch=on_epoch, device=device)
    progress.flush()

    new_result = evaluate_model(detector.Detector(model, device=device, score_threshold=EVAL_SCORE_THRESHOLD),
                                truths, files, class_names, with_operating_point=True)
    base_result = None
    if base is not None:
        with base.weights.open("rb") as handle:
            base_model = detector.Detector.from_bytes(handle.read(), architecture=base.architecture,
                                                      num_classes=len(base.class_names), device=device,
                                                      score_threshold=EVAL_SCORE_THRESHOLD)
        base_result = evaluate_model(base_model, truths, files, class_names, model_class_names=list(base.class_names))
    _register(run, model, _class_names_now(run, categories), new_result, base_result,
              by_tag=_scores_by_tag([t.image_id for t in truths], new_result, base_result),
              unjudged=classes_without_truth(truths, class_names))


def _scores_by_tag(image_ids: list[int], new: EvalResult, base: EvalResult | None) -> list[dict]:
    """Each version's holdout mAP on the images of each tag (a camera, night): the MAX_SLICES tags with most
    held-out images. A gain overall can hide a loss on one camera; this shows it, and for tags with
    TAG_MIN_IMAGES or more, how sure the change is (`change_interval`), and `change_bound`: the change lies
    below it beyond chance (below 0: `clear_loss`), which the project's tag_loss_limit is held against."""
    position = {image_id: n for n, image_id in enumerate(image_ids)}
    groups = {name: [position[pk] for pk in tagged] for name, tagged in images_by_tag(image_ids).items()}
    new_scores = map_of_groups(new, groups)
    base_scores = map_of_groups(base, groups) if base is not None else {}
    changes = tag_changes(new, base, groups) if base is not None else {}
    return [{"tag": name, "images": len(positions), "new": round(new_scores[name], 4),
             "active": round(base_scores[name], 4) if name in base_scores else None,
             **tag_change_fields(changes.get(name))}
            for name, positions in groups.items()]


def _predict_holdout(run: TrainingRun, version) -> None:
    """Comparisons and error review judge versions by their stored predictions on the reviewed holdout images:
    predict those with the new version, and with its base where the base has not predicted them yet."""
    holdout = list(Image.objects.filter(pk__in=run.snapshot.holdout_image_ids).values_list("pk", flat=True))
    if not holdout:
        return
    inference_run_create(project=run.project, user=run.requested_by, scope=InferenceScope.IDS, image_ids=holdout,
                         model_version=version)
    base = run.base_version
    if base is not None and base.weights:
        done = set(Prediction.objects.filter(model_version=base, image_id__in=holdout)
                   .values_list("image_id", flat=True))
        if missing := sorted(set(holdout) - done):
            inference_run_create(project=run.project, user=run.requested_by, scope=InferenceScope.IDS,
                                 image_ids=missing, model_version=base)


def _register(run: TrainingRun, model: torch.nn.Module, class_names: list[str], new: EvalResult,
              base: EvalResult | None, by_tag: list[dict] = (), unjudged: list[str] = ()) -> None:
    """Always register the new version; activate it only if it beats the active one on the same holdout.
    `by_tag` (each version's mAP per tag) is shown with the result, and a tag it does worse on is named;
    so are the classes `unjudged` (no held-out box), which the comparison could not see."""
    higher = base is None or new.map > base.map
    reason = ("no comparable active model" if base is None else
              f"holdout mAP {new.map:.4f} {'>' if higher else '<='} active {base.map:.4f}")
    # A class the active version does not know counts against it where it has held-out boxes (an unjudged one
    # is said below: there is nothing to find).
    if base is not None and run.base_version and (unknown := [n for n in class_names if n not in
                                                              run.base_version.class_names and n not in unjudged]):
        reason += f" (v{run.base_version.number} does not know {', '.join(unknown)}: it finds none there)"
    interval = base and map_gain_interval(new, base)
    if interval:
        low, high = interval
        reason += (f"; gain {new.map - base.map:+.3f}, {low:+.3f} to {high:+.3f} in 90% of resamples of the "
                   f"{new.images} held-out images" + (" (it may be chance)" if low <= 0 <= high else ""))
    if unjudged:
        reason += f"; not judged on {', '.join(unjudged)} (no held-out box)"
    if lower := [row for row in by_tag if row["active"] is not None and row["new"] < row["active"]]:
        reason += "; lower on " + ", ".join(f"{row['tag']} ({row['active']:.3f} to {row['new']:.3f}"
                                            f"{', clearly' if row.get('clear_loss') else ''})" for row in lower)
    promoted = higher
    if higher and base is not None and run.project.promote_only_clear_gains and not (interval and interval[0] > 0):
        promoted = False
        reason += "; the project promotes only clear gains"
    limit = run.project.tag_loss_limit
    if promoted and limit is not None and (beyond := [row["tag"] for row in by_tag
                                                      if row.get("change_bound") is not None and row["change_bound"] < -limit]):
        promoted = False
        reason += f"; the project refuses a clear loss of more than {limit:g} on a tag ({', '.join(beyond)})"
    metrics = {**new.as_dict(), "snapshot": run.snapshot.content_hash, "holdout_images": new.images}
    with transaction.atomic():
        version = model_version_create(
            project=run.project, architecture=run.architecture, class_names=class_names, user=run.requested_by,
            weights=detector.weights_to_bytes(model, architecture=run.architecture, class_names=class_names),
            source=ModelSource.TRAINED, parent=run.base_version, metrics=metrics, note=f"training run #{run.pk}")
        comparison = {
            "new": {"version": version.number, **new.as_dict()},
            "active": ({"version": run.base_version.number, **base.as_dict()} if base and run.base_version else None),
            "promoted": promoted, "reason": reason,
            "gain_interval": interval and [round(interval[0], 4), round(interval[1], 4)],
            "by_tag": list(by_tag), "unjudged": list(unjudged),
        }
        TrainingRun.objects.filter(pk=run.pk).update(result_version=version, comparison=comparison)
        _predict_holdout(run, version)
        if promoted:
            model_version_activate(version=version)
            if Image.objects.filter(project=run.project, status=ReviewStatus.UNREVIEWED).exists():
                inference_run_create(project=run.project, user=run.requested_by, scope=InferenceScope.UNREVIEWED,
                                     model_version=version)
        job_finish(run, status=JobStatus.SUCCEEDED)
    logger.info("training run %s: v%s %s (%s)", run.pk, version.number, "promoted" if promoted else "kept", reason)
