"""Reads of the training app that pages and the API share."""
from __future__ import annotations

from collections import defaultdict

import numpy as np
from django.db.models import Count, QuerySet

from inference.models import ModelVersion, Prediction
from inference.selectors import images_predicted_by
from review.models import REVIEWED_STATUSES, Annotation, Image, LabelClass, Project, Split
from review.tags import images_by_tag
from inference.matching import ImagePredictions, ImageTruth, confident, match_boxes
from training.evaluation import (TAG_MIN_IMAGES, classes_without_truth, coco_evaluate, map_of_groups, tag_change_fields,
                                 tag_changes)
from training.models import TrainingRun
from training.operating_points import confusion_matrix, operating_points


def training_runs_recent(*, project: Project, limit: int = 5) -> QuerySet[TrainingRun]:
    return (TrainingRun.objects.filter(project=project).select_related("base_version", "result_version", "snapshot")
            .order_by("-created_at")[:limit])


def model_versions_compare(*, first: ModelVersion, second: ModelVersion, score_threshold: float,
                           image_limit: int = 50, tag: str | None = None) -> dict:
    """Two versions judged on the same images: the reviewed holdout images both predicted, boxes found or
    not (only those tagged `tag`, when given).

    Gives COCO mAP/AP50 and per-class AP of each from their stored predictions, and per image the
    number of errors (false positives, wrong classes, poor localisations, misses) of each among
    predictions scoring at least `score_threshold`, so the caller can list what the second version
    fixed and what it broke. `tags` breaks the scores down by the images' tags (a camera, night): a
    version better overall may still be worse on one camera, and tags with TAG_MIN_IMAGES images or more
    say whether the second version's change there is clear or may be chance (evaluation.tag_changes).
    """
    classes = list(LabelClass.objects.filter(project_id=first.project_id).order_by("index", "id"))
    names = [c.name for c in classes]
    category_of = {c.pk: position + 1 for position, c in enumerate(classes)}
    rows = Image.objects.filter(project_id=first.project_id, split=Split.HOLDOUT, status__in=REVIEWED_STATUSES)
    if tag is not None:
        rows = rows.filter(tags__name=tag)
    holdout = list(rows.order_by("id").values("id", "width", "height"))
    both = images_predicted_by(version=first, image_ids=[i["id"] for i in holdout]) & images_predicted_by(
        version=second, image_ids=[i["id"] for i in holdout])
    images = [i for i in holdout if i["id"] in both]
    image_ids = [i["id"] for i in images]
    truths = _truths(images, category_of)
    result = {"images": len(images), "score_threshold": score_threshold, "tag": tag, "versions": [], "tags": [],
              "unjudged": classes_without_truth(truths, names)}
    errors_by_version, scores_by_version = [], []
    for version in (first, second):
        predictions = _predictions(version, image_ids, category_of)
        scores = coco_evaluate(truths, predictions, names)
        errors = {t.image_id: _error_count(match_boxes(t, confident(p, score_threshold)))
                  for t, p in zip(truths, predictions)}
        errors_by_version.append(errors)
        scores_by_version.append(scores)
        result["versions"].append({"id": version.pk, "number": version.number, **scores.as_dict(),
                                   "errors": sum(errors.values())})
    # Each tag's mAP from the matches just made (map_of_groups), not from another pycocotools run per tag.
    tagged = images_by_tag(image_ids)
    position = {image_id: n for n, image_id in enumerate(image_ids)}
    groups = {name: [position[pk] for pk in pks] for name, pks in tagged.items()}
    maps = [map_of_groups(scores, groups) for scores in scores_by_version]
    changes = tag_changes(scores_by_version[1], scores_by_version[0], groups)  # how sure each tag's change is
    waiting = _holdout_waiting_by_tag(first.project_id, [name for name, pks in tagged.items()
                                                         if len(pks) < TAG_MIN_IMAGES])
    result["tags"] = [{"tag": name, "images": len(pks), "versions": [
        {"number": version.number, "map": map_by_tag[name], "errors": sum(errors[pk] for pk in pks)}
        for version, map_by_tag, errors in zip((first, second), maps, errors_by_version)],
        **tag_change_fields(changes.get(name)), "holdout_waiting": waiting.get(name)} for name, pks in tagged.items()]
    changed = [(image_id, errors_by_version[0][image_id], errors_by_version[1][image_id]) for image_id in image_ids
               if errors_by_version[0][image_id] != errors_by_version[1][image_id]]
    result["fixed"] = [{"image": i, "errors_before": a, "errors_after": b}
                       for i, a, b in sorted(changed, key=lambda row: row[2] - row[1]) if b < a][:image_limit]
    result["broke"] = [{"image": i, "errors_before": a, "errors_after": b}
                       for i, a, b in sorted(changed, key=lambda row: row[1] - row[2]) if b > a][:image_limit]
    return result


def _holdout_waiting_by_tag(project_id: int, names: list[str]) -> dict[str, int]:
    """For tags too small to judge: their held-out images still waiting for review, which would judge them
    once reviewed (an image's split is fixed when it is added: training on these never hides them)."""
    if not names:
        return {}
    counts = (Image.tags.through.objects.filter(tag__project_id=project_id, tag__name__in=names,
                                                image__split=Split.HOLDOUT)
              .exclude(image__status__in=REVIEWED_STATUSES).values_list("tag__name").annotate(count=Count("id")))
    return dict.fromkeys(names, 0) | dict(counts)


def model_version_operating_points(*, version: ModelVersion, choose: str = "f1", target: float | None = None) -> dict:
    """What each score threshold would keep of `version`'s predictions on the reviewed holdout images it predicted.

    The curves start at the lowest score stored (inference keeps boxes from 0.05). Reviewed holdout
    images the version has not predicted are counted, not judged, so the caller can say so.
    """
    classes = list(LabelClass.objects.filter(project_id=version.project_id).order_by("index", "id"))
    category_of = {c.pk: position + 1 for position, c in enumerate(classes)}
    reviewed = Image.objects.filter(project_id=version.project_id, split=Split.HOLDOUT, status__in=REVIEWED_STATUSES)
    holdout = list(reviewed.order_by("id").values("id", "width", "height"))
    predicted = images_predicted_by(version=version, image_ids=[i["id"] for i in holdout])
    images = [i for i in holdout if i["id"] in predicted]
    truths = _truths(images, category_of)
    predictions = _predictions(version, [i["id"] for i in images], category_of)
    names = [c.name for c in classes]
    curves = operating_points(truths, predictions, names, choose=choose, target=target)
    point = curves[0].chosen or curves[0].best_f1  # the pooled one: a deployment's single threshold
    confusion = confusion_matrix(truths, predictions, names, threshold=point.threshold) if point else None
    return {"version": version.pk, "number": version.number, "images": len(images),
            "holdout_reviewed": reviewed.count(), "choose": choose, "target": target,
            "curves": [curve.as_dict() for curve in curves], "confusion": confusion and confusion.as_dict()}


def _truths(images: list[dict], category_of: dict[int, int]) -> list[ImageTruth]:
    boxes: dict[int, list] = defaultdict(list)
    for image_id, class_id, x, y, w, h in (Annotation.objects.filter(image__in=[i["id"] for i in images])
                                           .values_list("image_id", "label_class_id", "x", "y", "w", "h")):
        boxes[image_id].append((x, y, x + w, y + h, category_of[class_id]))
    return [ImageTruth(i["id"], i["width"], i["height"], *_arrays(boxes[i["id"]])[:2]) for i in images]


def _predictions(version: ModelVersion, image_ids: list[int], category_of: dict[int, int]) -> list[ImagePredictions]:
    boxes: dict[int, list] = defaultdict(list)
    rows = (Prediction.objects.filter(model_version=version, image_id__in=image_ids)
            .values_list("image_id", "label_class_id", "x", "y", "w", "h", "score"))
    for image_id, class_id, x, y, w, h, score in rows:
        boxes[image_id].append((x, y, x + w, y + h, category_of[class_id], score))
    return [ImagePredictions(image_id, *_arrays(boxes[image_id])) for image_id in image_ids]


def _arrays(rows: list[tuple]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    table = np.asarray(rows, dtype=np.float64).reshape(-1, len(rows[0]) if rows else 6)
    scores = table[:, 5].astype(np.float32) if table.shape[1] > 5 else np.zeros(len(table), np.float32)
    return table[:, :4].astype(np.float32), table[:, 4].astype(np.int64), scores


def _error_count(match) -> int:
    return sum(outcome != "tp" for outcome in match.prediction_outcomes) + match.false_negatives
