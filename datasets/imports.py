"""Bring a dataset into a project: images from a zip, with COCO, YOLO or VOC labels, or a COCO file alone.

Two phases, so that a big import shows progress and never leaves half its rows behind:
1. Read: every image is validated, normalised and its file stored; every label is checked against
   the image's real size. Nothing is in the database yet; progress and cancel work here.
2. Write: one transaction creates the classes, the image rows and their boxes (or, for detections
   with scores, an external model version and its predictions).
If any file is refused and the user did not ask for a partial import, phase 2 never runs and the
stored files are deleted: the project is exactly as it was. A partial import keeps the valid images,
each with all of its labels or not at all.
"""
from __future__ import annotations

import posixpath
import zipfile
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import BinaryIO

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from datasets.formats import (
    Box, FormatError, ImageLabels, box_problems, clipped, coco, is_image_name, is_video_name, stem, voc, yolo,
)
from datasets.video_source import VideoFrames
from inference.models import ModelVersion, Prediction
from inference.outcomes import box_outcomes_refresh
from inference.ranking import image_uncertainty, review_priority
from inference.services import model_version_external_create
from project.jobs import JobProgress
from review.archives import ArchiveRejected, SafeArchive
from review.look_alikes import RecentLooks
from review.models import Annotation, AnnotationSource, Image, LabelClass, Project, ReviewStatus
from review.services import (
    DuplicateImage, LookAlike, image_prepare, image_save_prepared, label_class_create, recent_looks,
)
from review.tags import TAG_NAME, image_tags_add, tag_names_clean


class ImportCancelled(Exception):
    """A user cancelled the import while its files were being read; nothing was written."""


@dataclass
class ImportReport:
    """What an import did, per file; stored on the DatasetImport row and shown to the user."""

    format: str = "images"
    committed: bool = False
    images_added: int = 0
    images_labelled: int = 0
    boxes_added: int = 0
    predictions_added: int = 0
    classes_created: list[str] = field(default_factory=list)
    model_version_id: int | None = None
    duplicates: list[dict] = field(default_factory=list)   # {"file", "existing_id"}
    rejected: list[dict] = field(default_factory=list)     # {"file", "error"}
    skipped: list[dict] = field(default_factory=list)      # {"file", "reason"}
    added_image_ids: list[int] = field(default_factory=list)
    objects_unchanged: int = 0  # a bucket import: objects an earlier import read, not read again
    look_alikes: int = 0        # with skip_look_alikes: images left out as looking like one kept just before
    folders_not_tags: list[str] = field(default_factory=list)  # with tag_folders: folder names no tag can have

    def as_dict(self) -> dict:
        data = asdict(self)
        data.pop("added_image_ids")
        return data

    def refuse(self, file: str, error: str) -> None:
        self.rejected.append({"file": file, "error": error})

    def skip(self, file: str, reason: str) -> None:
        self.skipped.append({"file": file, "reason": reason})


# --- Where the files come from ----------------------------------------------------------------

class ImportSource:
    """The files of an import: the entries of a checked zip, or a single COCO JSON file. A video in the zip
    gives one frame every `frame_every` seconds, as entries beside it (`cam1/clip_12.00s.jpg` for
    `cam1/clip.mp4`, datasets/video_source.py). (The objects under a bucket prefix come the same way
    through datasets/bucket_source.py.)"""

    refused: tuple[tuple[str, str], ...] = ()  # (file, why): what a source refuses before the plan (its videos)

    def __init__(self, file: BinaryIO, *, name: str, frame_every: float = 1.0) -> None:
        self._archive = None
        self._single: tuple[str, bytes] | None = None
        if zipfile.is_zipfile(file):
            file.seek(0)
            self._archive = SafeArchive(file, max_entries=settings.MAX_ARCHIVE_ENTRIES,
                                        max_total_bytes=settings.MAX_ARCHIVE_BYTES)
            self._entries = {entry.name: entry for entry in self._archive}
            files = [entry.name for entry in self._archive if not is_video_name(entry.name)]
            self._videos = VideoFrames(lambda video: self._archive.open(self._entries[video]), every=frame_every)
            taken = set(files)
            for video in sorted(entry.name for entry in self._archive if is_video_name(entry.name)):
                self._videos.add(video, taken=taken)
            self.refused = tuple(self._videos.refused)
            self.names = files + list(self._videos.frames)
            if len(self.names) > settings.MAX_ARCHIVE_ENTRIES:
                self.close()
                raise ArchiveRejected(f"The archive gives {len(self.names)} images and label files (one frame every "
                                      f"{frame_every:g} s of each video); the limit is "
                                      f"{settings.MAX_ARCHIVE_ENTRIES}. Split it, or take frames less often.")
        elif name.lower().endswith(".json"):
            file.seek(0)
            data = file.read(settings.MAX_LABEL_FILE_BYTES + 1)
            if len(data) > settings.MAX_LABEL_FILE_BYTES:
                raise ArchiveRejected(f"The JSON file is larger than {settings.MAX_LABEL_FILE_BYTES / 1e6:.0f} MB.")
            self._single = (posixpath.basename(name.replace("\\", "/")) or "annotations.json", data)
            self.names = [self._single[0]]
        else:
            raise ArchiveRejected("Upload a zip archive (images, optionally with labels) or a COCO .json file.")

    @property
    def is_archive(self) -> bool:
        return self._archive is not None

    def will_read(self, names: list[str]) -> None:
        """The order entries will be read in; a zip has nothing to gain from knowing it (a bucket does)."""

    def read(self, name: str) -> bytes:
        if self._single is not None:
            return self._single[1]
        if name in self._videos.frames:
            return self._videos.read(name)
        return self._archive.read(self._entries[name])

    def close(self) -> None:
        if self._archive is not None:
            self._videos.close()
            self._archive.close()


# --- What to import: images paired with their labels ------------------------------------------

@dataclass
class Planned:
    """One image of the import: where its bytes are and which labels name it."""

    name: str                        # how the report names it: the archive path, or the label file's name
    entry: str | None = None         # archive path of the image; None for an image already in the project
    labels: ImageLabels | None = None
    existing: Image | None = None    # the project's image that a label file names (COCO file alone)


@dataclass
class Plan:
    format: str
    class_names: list[str]           # declared by the label files, in their order
    items: list[Planned]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)   # label files that cannot be read at all

    @property
    def detections(self) -> bool:
        """True when the labels are a model's detections (boxes with scores), not human labels."""
        scored = {box.score is not None for item in self.items if item.labels for box in item.labels.boxes}
        if len(scored) > 1:
            raise FormatError("Some boxes have a confidence score and some do not; import a model's detections "
                              "and human labels separately.")
        return scored == {True}


def detect_format(names: list[str]) -> str:
    lowered = [name.lower() for name in names]
    if any(name.endswith(".json") for name in lowered):
        return "coco"
    if any(name.endswith(".xml") for name in lowered):
        return "voc"
    if any(posixpath.basename(name) in yolo.NAME_FILES for name in lowered) or any(
            name.endswith(".txt") and "labels/" in f"/{name}" for name in lowered):
        return "yolo"
    return "images"


def plan_import(source: ImportSource, *, project: Project, format: str = "auto") -> Plan:
    """Pair each image with its labels; raises FormatError when the label files cannot be used at all."""
    format = detect_format(source.names) if format == "auto" else format
    images = [name for name in source.names if is_image_name(name)]
    if format == "coco":
        plan = _plan_coco(source, project, images)
    elif format == "yolo":
        plan = _plan_yolo(source, images)
    elif format == "voc":
        plan = _plan_voc(source, images)
    elif format == "images":
        plan = Plan("images", [], [Planned(name, entry=name) for name in images])
    else:
        raise FormatError(f"Unknown format {format!r}; choose auto, coco, yolo, voc or images.")
    plan.refused += source.refused
    used = {item.entry for item in plan.items} | {name for name, _ in plan.skipped + plan.refused}
    plan.skipped += [(name, "not an image or a label file of this format") for name in source.names
                     if name not in used and not _is_label_file(name, format)]
    return plan


def _is_label_file(name: str, format: str) -> bool:
    lowered = name.lower()
    return (format == "coco" and lowered.endswith(".json")) or (format == "voc" and lowered.endswith(".xml")) or (
        format == "yolo" and (lowered.endswith(".txt") or posixpath.basename(lowered) in yolo.NAME_FILES))


def _by_basename(names: list[str]) -> dict[str, list[str]]:
    index = defaultdict(list)
    for name in names:
        index[posixpath.basename(name)].append(name)
    return index


def _plan_coco(source: ImportSource, project: Project, images: list[str]) -> Plan:
    json_files = [name for name in source.names if name.lower().endswith(".json")]
    if len(json_files) != 1:
        raise FormatError(f"A COCO import holds exactly one .json file; this one holds {len(json_files)}.")
    class_names, labelled = coco.read(source.read(json_files[0]), file_name=json_files[0])
    exact, by_base = set(images), _by_basename(images)
    in_project = _project_images_by_name(project) if labelled else {}
    items, matched = [], set()
    for labels in labelled:
        candidates = [labels.file_name] if labels.file_name in exact else by_base.get(
            posixpath.basename(labels.file_name), [])
        if len(candidates) == 1 and candidates[0] not in matched:
            matched.add(candidates[0])
            items.append(Planned(candidates[0], entry=candidates[0], labels=labels))
        else:
            existing = in_project.get(labels.file_name) or in_project.get(stem(labels.file_name))
            items.append(Planned(labels.file_name, labels=labels, existing=existing))
    items += [Planned(name, entry=name) for name in images if name not in matched]
    return Plan("coco", class_names, items)


def _project_images_by_name(project: Project) -> dict[str, Image]:
    """The project's images by original name and by name stem, where that name is unique in the project."""
    counts: dict[str, list[Image]] = defaultdict(list)
    for image in Image.objects.filter(project=project).only("id", "original_name", "width", "height", "status",
                                                            "version"):
        counts[image.original_name].append(image)
        if stem(image.original_name) != image.original_name:
            counts[stem(image.original_name)].append(image)
    return {name: found[0] for name, found in counts.items() if len(found) == 1}


def _plan_yolo(source: ImportSource, images: list[str]) -> Plan:
    name_files = sorted((name for name in source.names if posixpath.basename(name.lower()) in yolo.NAME_FILES),
                        key=lambda name: (name.count("/"), not name.lower().endswith((".yaml", ".yml")), name))
    if not name_files:
        raise FormatError("YOLO labels need their class names: add data.yaml (with 'names') or classes.txt.")
    class_names = yolo.read_names(source.read(name_files[0]), file_name=name_files[0])
    label_files = {name for name in source.names if name.lower().endswith(".txt") and name not in name_files}
    items, used = [], set()
    for image in images:
        beside = posixpath.join(posixpath.dirname(image), stem(image) + ".txt")
        label_file = next((path for path in (yolo.label_path_for(image), beside) if path in label_files), None)
        labels = None
        if label_file:
            used.add(label_file)
            labels = yolo.read_labels(source.read(label_file), file_name=label_file, image_name=image,
                                      class_names=class_names)
        items.append(Planned(image, entry=image, labels=labels))
    skipped = [(name, "no image with this name") for name in sorted(label_files - used)]
    return Plan("yolo", class_names, items, skipped=skipped + [(name, "class names") for name in name_files[1:]])


def _plan_voc(source: ImportSource, images: list[str]) -> Plan:
    by_stem, by_base = defaultdict(list), _by_basename(images)
    for image in images:
        by_stem[stem(image)].append(image)
    items, matched, refused, skipped, class_names = [], set(), [], [], []
    for xml_file in sorted(name for name in source.names if name.lower().endswith(".xml")):
        try:
            labels = voc.read(source.read(xml_file), file_name=xml_file)
        except FormatError as exc:
            refused.append((xml_file, str(exc)))
            continue
        candidates = by_stem.get(stem(xml_file)) or by_base.get(posixpath.basename(labels.file_name), [])
        if len(candidates) != 1 or candidates[0] in matched:
            skipped.append((xml_file, f"no single image named {labels.file_name!r} in the archive"))
            continue
        matched.add(candidates[0])
        items.append(Planned(candidates[0], entry=candidates[0], labels=labels))
        class_names += [box.category for box in labels.boxes if box.category not in class_names]
    items += [Planned(name, entry=name) for name in images if name not in matched]
    return Plan("voc", class_names, items, skipped=skipped, refused=refused)


# --- Phase 1: read and check everything ---------------------------------------------------------

@dataclass
class Ready:
    """An image that passed every check, with its boxes in pixels, waiting for the write phase."""

    name: str
    image: Image                  # unsaved (new) or already in the project
    is_new: bool
    boxes: list[Box] | None       # None: no labels for this image
    duplicate_of: str | None = None
    tags: list[str] = field(default_factory=list)  # its own, from the label file (a COCO export of ours)


def _read_all(plan: Plan, source: ImportSource, *, project: Project, detections: bool, report: ImportReport,
              progress: JobProgress | None, ready: list[Ready], skip_look_alikes: bool = False) -> None:
    """Fill `ready` as images pass (so a caller can delete their stored files if anything goes wrong)."""
    by_hash: dict[str, Ready] = {}
    recent = recent_looks(project)  # a clip's frames one after another: each joins the split of the one before
    source.will_read([item.entry for item in plan.items if item.entry is not None])
    for item in plan.items:
        if progress is not None and progress.cancelled():
            raise ImportCancelled
        outcome = _read_one(item, source, project=project, detections=detections, report=report, by_hash=by_hash,
                            recent=recent, skip_look_alikes=skip_look_alikes)
        if outcome is not None:
            ready.append(outcome)
        if progress is not None:
            progress.add(1)


def _read_one(item: Planned, source: ImportSource, *, project: Project, detections: bool, report: ImportReport,
              by_hash: dict[str, Ready], recent: RecentLooks, skip_look_alikes: bool) -> Ready | None:
    is_new = False
    if item.entry is not None:
        try:
            # A labelled image is always kept: its labels are someone's work.
            image = image_prepare(project=project, data=source.read(item.entry), filename=item.entry, recent=recent,
                                  refuse_look_alikes=skip_look_alikes and item.labels is None)
            is_new = True
        except LookAlike as exc:
            report.look_alikes += 1
            report.skip(item.name, str(exc))
            return None
        except DuplicateImage as exc:
            report.duplicates.append({"file": item.name, "existing_id": exc.existing.pk})
            if not (detections and item.labels):
                return None  # human labels never overwrite an image already in the project
            image = exc.existing
        except (ValidationError, ArchiveRejected) as exc:
            report.refuse(item.name, " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc))
            return None
        if is_new and image.content_hash in by_hash:
            image.file.delete(save=False)
            report.duplicates.append({"file": item.name, "existing_id": None})
            report.skip(item.name, f"the same image as {by_hash[image.content_hash].name}")
            return None
    elif item.existing is not None:
        image = item.existing
    else:
        report.refuse(item.name, "named by the label file but neither in the archive nor in the project")
        return None
    boxes, problems = _checked_boxes(item.labels, image)
    if not problems and item.labels and not detections and not is_new and image.status != ReviewStatus.UNREVIEWED:
        report.skip(item.name, "already reviewed in the project; its boxes are kept")
        return None
    try:
        tags = tag_names_clean(item.labels.tags if item.labels else [])
    except ValidationError as exc:
        problems.append(" ".join(exc.messages))
    if problems:
        if is_new:
            image.file.delete(save=False)
        report.refuse(item.name, "; ".join(problems))
        return None
    outcome = Ready(item.name, image, is_new, boxes, tags=tags)
    if is_new:
        by_hash[image.content_hash] = outcome
    return outcome


def _checked_boxes(labels: ImageLabels | None, image: Image) -> tuple[list[Box] | None, list[str]]:
    if labels is None:
        return None, []
    problems = list(labels.problems)
    if labels.width is not None and (labels.width, labels.height) != (image.width, image.height):
        problems.append(f"the labels are for a {labels.width}x{labels.height} image but the image is "
                        f"{image.width}x{image.height}")
        return None, problems
    boxes = labels.in_pixels(image.width, image.height)
    problems += box_problems(boxes, width=image.width, height=image.height)
    return [clipped(box, width=image.width, height=image.height) for box in boxes], problems


# --- Phase 2: write -----------------------------------------------------------------------------

def _write_all(plan: Plan, ready: list[Ready], *, project: Project, user: AbstractBaseUser | None,
               detections: bool, model_name: str, tags: list[str], tag_folders: bool, report: ImportReport) -> None:
    used = [box.category for item in ready if item.boxes for box in item.boxes]
    wanted = plan.class_names + [name for name in dict.fromkeys(used) if name not in plan.class_names]
    class_ids = dict(LabelClass.objects.filter(project=project).values_list("name", "pk"))
    for name in wanted:
        if name not in class_ids:
            class_ids[name] = label_class_create(project=project, name=name).pk
            report.classes_created.append(name)
    version = None
    if detections:
        version = model_version_external_create(project=project, name=model_name, class_names=wanted, user=user)
        report.model_version_id = version.pk
    now = timezone.now()
    annotations, predictions, scored_images = [], [], []
    for item in ready:
        labelled = item.boxes is not None
        if item.is_new:
            if labelled and not detections:
                item.image.status, item.image.reviewed_at, item.image.reviewed_by = ReviewStatus.REVIEWED, now, user
            try:
                image_save_prepared(item.image)
            except DuplicateImage as exc:  # the same bytes were uploaded meanwhile
                report.duplicates.append({"file": item.name, "existing_id": exc.existing.pk})
                if not detections:
                    continue
                item.image = exc.existing
            else:
                report.images_added += 1
                report.added_image_ids.append(item.image.pk)
        elif labelled and not detections:
            # Only if nobody reviewed it since phase 1 read it: a saved review is never overwritten.
            updated = Image.objects.filter(pk=item.image.pk, status=ReviewStatus.UNREVIEWED,
                                           version=item.image.version).update(
                status=ReviewStatus.REVIEWED, reviewed_at=now, reviewed_by=user, version=F("version") + 1)
            if not updated:
                report.skip(item.name, "reviewed by someone while the import ran; their boxes are kept")
                continue
        if not labelled:
            continue
        report.images_labelled += 1
        if detections:
            predictions += [Prediction(image_id=item.image.pk, model_version=version,
                                       label_class_id=class_ids[b.category], x=b.x, y=b.y, w=b.w, h=b.h,
                                       score=b.score) for b in item.boxes]
            scored_images.append((item.image.pk, [b.score for b in item.boxes]))
        else:
            annotations += [Annotation(image_id=item.image.pk, label_class_id=class_ids[b.category], x=b.x, y=b.y,
                                       w=b.w, h=b.h, source=AnnotationSource.IMPORTED, author=user, created_at=now,
                                       updated_at=now) for b in item.boxes]
    Annotation.objects.bulk_create(annotations, batch_size=1000)
    Prediction.objects.bulk_create(predictions, batch_size=1000)
    image_tags_add(project=project, images=Image.objects.filter(pk__in=report.added_image_ids), names=tags)
    by_tag: dict[str, list[int]] = defaultdict(list)  # each image's own tags, as its label file gives them
    added = set(report.added_image_ids)
    for item in ready:
        if item.image.pk and (item.is_new or item.boxes is not None):
            for name in item.tags:
                by_tag[name].append(item.image.pk)
        if tag_folders and item.image.pk in added and "/" in item.name:
            folder = " ".join(item.name.split("/", 1)[0].split())
            if TAG_NAME.fullmatch(folder):
                by_tag[folder].append(item.image.pk)
            elif folder not in report.folders_not_tags:
                report.folders_not_tags.append(folder)
    for name, image_ids in by_tag.items():
        image_tags_add(project=project, images=Image.objects.filter(pk__in=image_ids), names=[name])
    report.boxes_added, report.predictions_added = len(annotations), len(predictions)
    if version is not None:
        _rank_by_imported_scores(scored_images, version=version, threshold=project.score_threshold)
    # Error review: imported truth judges every version's predictions; imported detections are judged by it.
    labelled = [item.image.pk for item in ready if item.boxes is not None and item.image.pk]
    box_outcomes_refresh(image_ids=labelled, model_version_ids=[version.pk] if version else None)


def _rank_by_imported_scores(scored_images: list[tuple[int, list[float]]], *, version: ModelVersion,
                             threshold: float) -> None:
    """Unreviewed images take the imported model's uncertainty, as after one of our inference runs."""
    unreviewed = set(Image.objects.filter(pk__in=[pk for pk, _ in scored_images], status=ReviewStatus.UNREVIEWED)
                     .values_list("pk", flat=True))
    rows = []
    for pk, scores in scored_images:
        if pk in unreviewed:
            uncertainty = image_uncertainty(np.asarray(scores, dtype=np.float64), threshold=threshold)
            rows.append(Image(pk=pk, uncertainty=uncertainty, disagreement=None, count_anomaly=None,
                              priority=review_priority(uncertainty=uncertainty, disagreement=None, count_anomaly=None),
                              ranked_by=version.number))
    Image.objects.bulk_update(rows, ["uncertainty", "disagreement", "count_anomaly", "priority", "ranked_by"],
                              batch_size=500)


# --- The whole import -------------------------------------------------------------------------

def dataset_import(*, project: Project, source: ImportSource, user: AbstractBaseUser | None, format: str = "auto",
                   partial: bool = False, model_name: str = "", tags: list[str] = (), tag_folders: bool = False,
                   skip_look_alikes: bool = False, progress: JobProgress | None = None, on_plan=None) -> ImportReport:
    """Import a dataset; raises FormatError or ArchiveRejected when nothing in it can be used. The images
    it adds get the named `tags` (checked names: review.tags.tag_names_clean) and, with `tag_folders`,
    their top folder's name ("gate" for gate/0800.jpg: a camera's, under a bucket prefix). With
    `skip_look_alikes`, an unlabelled image that looks like one kept just before it (a fixed camera's
    unchanged view: review/look_alikes.py) is skipped and reported, not added.

    `on_plan(count)` is told how many images there are before reading starts (for progress totals).
    """
    plan = plan_import(source, project=project, format=format)
    detections = plan.detections
    report = ImportReport(format=plan.format)
    for name, reason in plan.skipped:
        report.skip(name, reason)
    for name, error in plan.refused:
        report.refuse(name, error)
    if on_plan is not None:
        on_plan(len(plan.items))
    ready: list[Ready] = []
    try:
        _read_all(plan, source, project=project, detections=detections, report=report, progress=progress,
                  ready=ready, skip_look_alikes=skip_look_alikes)
        if report.rejected and not partial:
            raise _NothingKept
        with transaction.atomic():
            _write_all(plan, ready, project=project, user=user, detections=detections, model_name=model_name,
                       tags=list(tags), tag_folders=tag_folders, report=report)
        report.committed = True
    except _NothingKept:
        _delete_new_files(ready)
    except BaseException:
        _delete_new_files(ready)
        raise
    return report


class _NothingKept(Exception):
    pass


def _delete_new_files(ready: list[Ready]) -> None:
    for item in ready:
        if item.is_new:
            item.image.file.delete(save=False)
