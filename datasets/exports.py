"""Write a project's labels out as a zip: reviewed labels, one model version's predictions, or a snapshot.

Formats and layouts (what the tools that read them expect):
- COCO: `annotations.json` and `images/<name>`.
- YOLO: `data.yaml`, `images/{train,val}/<name>`, `labels/{train,val}/<stem>.txt` (ultralytics).
- VOC: `Annotations/<stem>.xml`, `JPEGImages/<name>`, `ImageSets/Main/{train,val}.txt`.
Holdout images go to `val`. Images are streamed from storage into the zip one at a time, so an export
of any size runs in bounded memory. File names come from the uploaded names, made safe and unique.
"""
from __future__ import annotations

import json
import re
import zipfile
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from django.core.exceptions import ValidationError

from datasets.formats import Box, ImageLabels, coco, stem, voc, yolo
from inference.models import ModelVersion, Prediction, version_being_deleted
from project.jobs import JobProgress
from project.storage import storage_read
from review.models import REVIEWED_STATUSES, Annotation, Image, LabelClass, Project, Split
from training.models import DatasetSnapshot

CHUNK = 500


class ExportCancelled(Exception):
    """A user cancelled the export; the partial zip is thrown away."""


@dataclass(frozen=True)
class ExportSpec:
    format: str                      # coco, yolo or voc
    source: str = "reviewed"         # reviewed, predictions or snapshot
    include_images: bool = True
    model_version: ModelVersion | None = None
    snapshot: DatasetSnapshot | None = None
    min_score: float = 0.0
    image_ids: tuple[int, ...] | None = None  # only these images (of the reviewed or predicted ones); None: all


@dataclass
class ExportSummary:
    image_count: int = 0
    box_count: int = 0
    missing_images: int = 0          # named by a snapshot but deleted since


def export_spec_check(project: Project, spec: ExportSpec) -> None:
    """Refuse an export that cannot work, before anything is queued."""
    if spec.image_ids is not None:
        if spec.source == "snapshot":
            raise ValidationError({"images": "A snapshot is exported whole: it is the exact set a model learned from."})
        if not spec.image_ids:
            raise ValidationError({"images": "Name at least one image, or leave images out to export them all."})
    if spec.format not in ("coco", "yolo", "voc"):
        raise ValidationError({"format": f"Unknown format {spec.format!r}; choose coco, yolo or voc."})
    if spec.source == "predictions":
        if spec.model_version is None or spec.model_version.project_id != project.pk:
            raise ValidationError({"model_version": "Name a model version of this project whose predictions to export."})
        if version_being_deleted(spec.model_version.pk):
            raise ValidationError({"model_version": f"{spec.model_version} is being deleted."})
        if not 0 <= spec.min_score <= 1:
            raise ValidationError({"min_score": "The minimum score must be between 0 and 1."})
    elif spec.source == "snapshot":
        if spec.snapshot is None or spec.snapshot.project_id != project.pk:
            raise ValidationError({"snapshot": "Name a snapshot of this project to export."})
    elif spec.source != "reviewed":
        raise ValidationError({"source": f"Unknown source {spec.source!r}; choose reviewed, predictions or snapshot."})


def export_write(*, project: Project, spec: ExportSpec, out: BinaryIO, progress: JobProgress | None = None,
                 on_total=None) -> ExportSummary:
    """Write the export zip to `out`. `on_total(count)` is told how many images before writing starts."""
    export_spec_check(project, spec)
    class_names, image_ids, boxes_for = _source(project, spec)
    if spec.image_ids is not None:
        chosen = set(spec.image_ids)
        image_ids = [pk for pk in image_ids if pk in chosen]
    summary = ExportSummary()
    if on_total is not None:
        on_total(len(image_ids))
    rows = {row["id"]: row for start in range(0, len(image_ids), CHUNK)  # SQLite: at most 32,766 parameters
            for row in Image.objects.filter(pk__in=image_ids[start:start + CHUNK]).values("id", "original_name", "file")}
    summary.missing_images = len(image_ids) - len(rows)
    tags: dict[int, list[str]] = defaultdict(list)  # COCO keeps them (a field of each image), so a re-import does
    for start in range(0, len(image_ids), CHUNK):
        for image_id, name in (Image.tags.through.objects.filter(image_id__in=image_ids[start:start + CHUNK])
                               .order_by("tag__name").values_list("image_id", "tag__name")):
            tags[image_id].append(name)
    names = archive_names(list(rows.values()))
    writer = _WRITERS[spec.format](class_names)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for image, boxes in _images_with_boxes([i for i in image_ids if i in rows], boxes_for):
            if progress is not None and progress.cancelled():
                raise ExportCancelled
            labels = ImageLabels(file_name=names[image.pk], boxes=boxes, width=image.width, height=image.height,
                                 split=image.split, tags=tuple(tags.get(image.pk, ())))
            writer.add(archive, labels)
            if spec.include_images:
                # Stored, not deflated: images are compressed already.
                entry = zipfile.ZipInfo(writer.image_path(labels), date_time=image.created_at.timetuple()[:6])
                entry.compress_type = zipfile.ZIP_STORED
                with archive.open(entry, "w") as target:
                    target.write(storage_read(image.file.name))  # one request on a bucket (project/storage.py)
            summary.image_count += 1
            summary.box_count += len(boxes)
            if progress is not None:
                progress.add(1)
        writer.finish(archive)
    return summary


def archive_names(rows: list[dict]) -> dict[int, str]:
    """Safe, unique file names: the uploaded name's stem (made safe) and the stored file's extension.

    Stems must be unique, not only names, because YOLO and VOC pair labels with images by stem.
    """
    stems = {row["id"]: _safe(stem(row["original_name"])) for row in rows}
    counts = Counter(stems.values())
    names = {}
    for row in rows:
        base = stems[row["id"]] if counts[stems[row["id"]]] == 1 else f"{stems[row['id']]}-{row['id']}"
        names[row["id"]] = f"{base}.{str(row['file']).rsplit('.', 1)[-1].lower()}"
    return names


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:100] or "image"


# --- Sources: which images, with which boxes ---------------------------------------------------

def _source(project: Project, spec: ExportSpec):
    """(class names, image ids in order, a function giving the boxes of a chunk of images)."""
    if spec.source == "snapshot":
        return _snapshot_source(spec.snapshot)
    classes = dict(LabelClass.objects.filter(project=project).order_by("index").values_list("pk", "name"))
    class_names = list(classes.values())  # in class index order
    if spec.source == "reviewed":
        image_ids = list(Image.objects.filter(project=project, status__in=REVIEWED_STATUSES).order_by("id")
                         .values_list("pk", flat=True))

        def boxes_for(ids: list[int]) -> dict[int, list[Box]]:
            found = defaultdict(list)
            for image_id, class_id, x, y, w, h in (Annotation.objects.filter(image_id__in=ids).order_by("id")
                                                   .values_list("image_id", "label_class_id", "x", "y", "w", "h")):
                found[image_id].append(Box(classes[class_id], x, y, w, h))
            return found
        return class_names, image_ids, boxes_for

    predictions = Prediction.objects.filter(model_version=spec.model_version)
    image_ids = list(predictions.order_by("image_id").values_list("image_id", flat=True).distinct())

    def boxes_for(ids: list[int]) -> dict[int, list[Box]]:
        found = defaultdict(list)
        rows = (predictions.filter(image_id__in=ids, score__gte=spec.min_score).order_by("image_id", "-score", "id")
                .values_list("image_id", "label_class_id", "x", "y", "w", "h", "score"))
        for image_id, class_id, x, y, w, h, score in rows:
            found[image_id].append(Box(classes[class_id], x, y, w, h, score=score))
        return found
    return class_names, image_ids, boxes_for


def _snapshot_source(snapshot: DatasetSnapshot):
    with snapshot.file.open("rb") as stored:
        doc = json.load(stored)
    names = {c["id"]: c["name"] for c in doc["categories"]}
    by_image = defaultdict(list)
    for a in doc["annotations"]:
        by_image[a["image_id"]].append(Box(names[a["category_id"]], *a["bbox"]))
    image_ids = [image["id"] for image in doc["images"]]
    return [c["name"] for c in doc["categories"]], image_ids, lambda ids: {i: by_image.get(i, []) for i in ids}


def _images_with_boxes(image_ids: list[int], boxes_for) -> Iterator[tuple[Image, list[Box]]]:
    for start in range(0, len(image_ids), CHUNK):
        ids = image_ids[start:start + CHUNK]
        images = Image.objects.in_bulk(ids)
        boxes = boxes_for(ids)
        for image_id in ids:
            yield images[image_id], boxes.get(image_id, [])


# --- Writers: one per format ------------------------------------------------------------------

class CocoWriter:
    def __init__(self, class_names: list[str]) -> None:
        self.class_names = class_names
        self.images: list[ImageLabels] = []

    def image_path(self, labels: ImageLabels) -> str:
        return f"images/{labels.file_name}"

    def add(self, archive: zipfile.ZipFile, labels: ImageLabels) -> None:
        self.images.append(labels)

    def finish(self, archive: zipfile.ZipFile) -> None:
        archive.writestr("annotations.json", coco.dump(self.class_names, self.images))


class YoloWriter:
    def __init__(self, class_names: list[str]) -> None:
        self.class_names = class_names

    def image_path(self, labels: ImageLabels) -> str:
        return f"images/{yolo.SPLIT_FOLDERS[labels.split or Split.TRAIN]}/{labels.file_name}"

    def add(self, archive: zipfile.ZipFile, labels: ImageLabels) -> None:
        archive.writestr(yolo.label_path_for(self.image_path(labels)), yolo.dump_labels(
            labels.boxes, width=labels.width, height=labels.height, class_names=self.class_names))

    def finish(self, archive: zipfile.ZipFile) -> None:
        archive.writestr("data.yaml", yolo.dump_data_yaml(self.class_names))


class VocWriter:
    def __init__(self, class_names: list[str]) -> None:
        self.lists: dict[str, list[str]] = {name: [] for name in voc.SPLIT_LISTS.values()}

    def image_path(self, labels: ImageLabels) -> str:
        return f"JPEGImages/{labels.file_name}"

    def add(self, archive: zipfile.ZipFile, labels: ImageLabels) -> None:
        archive.writestr(f"Annotations/{stem(labels.file_name)}.xml", voc.dump(labels))
        self.lists[voc.SPLIT_LISTS[labels.split or Split.TRAIN]].append(stem(labels.file_name))

    def finish(self, archive: zipfile.ZipFile) -> None:
        for name, stems in self.lists.items():
            archive.writestr(f"ImageSets/Main/{name}.txt", "".join(f"{s}\n" for s in stems))


_WRITERS = {"coco": CocoWriter, "yolo": YoloWriter, "voc": VocWriter}
