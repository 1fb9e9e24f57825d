"""Exports: layouts the other tools read, pycocotools loading and evaluating ours, and round trips."""
import io
import json
import math
import zipfile

import numpy as np
import pytest
import yaml
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from datasets.exports import ExportSpec, archive_names, export_write
from datasets.imports import ImportSource, dataset_import
from inference.models import Prediction
from review.models import Annotation, Image, LabelClass
from review.services import BoxIn, image_boxes_save
from tests.datasets.helpers import source_of
from tests.factories import add_images, add_model_version, make_project, review_with_truth
from training.services import snapshot_freeze

pytestmark = pytest.mark.django_db


def _reviewed_project(count: int = 5):
    project = make_project()
    images = add_images(project, count, size=96)
    for seed, image in enumerate(images):
        review_with_truth(image, seed=seed, size=96)
    # Awkward coordinates, to see the precision of each format.
    circle = LabelClass.objects.get(project=project, name="circle")
    image = Image.objects.get(pk=images[0].pk)
    image_boxes_save(image=image, user=None, version=image.version,
                     boxes=[BoxIn(circle.pk, 10.123, 20.987, 33.333, 11.111), BoxIn(circle.pk, 0, 0, 96, 96)])
    return project


def _export(project, **spec) -> zipfile.ZipFile:
    return zipfile.ZipFile(_export_bytes(project, **spec))


def _export_bytes(project, **spec) -> io.BytesIO:
    out = io.BytesIO()
    export_write(project=project, spec=ExportSpec(**spec), out=out)
    out.seek(0)
    return out


def _boxes_by_image(project) -> dict[tuple, list]:
    """{(width, height, sorted box list)} keyed by the stored pixels' dimensions and name stem."""
    result = {}
    for image in Image.objects.filter(project=project, status__in=["reviewed", "approved"]):
        boxes = sorted((a.label_class.name, a.x, a.y, a.w, a.h) for a in image.annotations.select_related("label_class"))
        result[image.original_name.rsplit(".", 1)[0]] = (image.width, image.height, boxes)
    return result


@pytest.mark.parametrize(("format", "tolerance"), [("coco", 0.01), ("voc", 0.01), ("yolo", 96 * 1e-6)])
def test_round_trip_gives_back_the_same_images_classes_and_boxes(format, tolerance):
    project = _reviewed_project()
    target = make_project(name="Copy", class_names=[])
    report = dataset_import(project=target, source=ImportSource(_export_bytes(project, format=format),
                                                                name="export.zip"), user=None)
    assert report.committed and report.rejected == [] and report.format == format
    assert report.images_added == 5
    assert list(target.label_classes.values_list("name", flat=True)) == ["circle", "square", "triangle"]
    original, copied = _boxes_by_image(project), _boxes_by_image(target)
    assert original.keys() == copied.keys()
    for name, (width, height, boxes) in original.items():
        assert copied[name][:2] == (width, height)
        assert len(copied[name][2]) == len(boxes) > 0
        for mine, theirs in zip(boxes, copied[name][2]):
            assert mine[0] == theirs[0]
            assert all(math.isclose(a, b, abs_tol=tolerance) for a, b in zip(mine[1:], theirs[1:])), (mine, theirs)


def test_a_coco_export_keeps_each_image_s_tags_and_an_import_gives_them_back():
    from review.tags import image_tags_add

    project = _reviewed_project(3)
    first, second, third = Image.objects.filter(project=project).order_by("pk")
    image_tags_add(project=project, images=Image.objects.filter(pk__in=[first.pk, second.pk]), names=["gate"])
    image_tags_add(project=project, images=Image.objects.filter(pk=first.pk), names=["night"])
    doc = json.loads(_export(project, format="coco").read("annotations.json"))
    assert sorted(image.get("tags", []) for image in doc["images"]) == [[], ["gate"], ["gate", "night"]]
    target = make_project(name="Copy", class_names=[])
    report = dataset_import(project=target, source=ImportSource(_export_bytes(project, format="coco"),
                                                                name="export.zip"), user=None, tags=["site-a"])
    assert report.committed and report.images_added == 3
    copied = {image.original_name: sorted(image.tags.values_list("name", flat=True))
              for image in Image.objects.filter(project=target)}
    assert copied == {first.original_name: ["gate", "night", "site-a"], second.original_name: ["gate", "site-a"],
                      third.original_name: ["site-a"]}
    doc["images"][0]["tags"] = ["<bad>"]
    export = _export(project, format="coco")
    files = {name: export.read(name) for name in export.namelist()} | {"annotations.json": json.dumps(doc).encode()}
    bad = dataset_import(project=make_project(name="Third", class_names=[]), source=source_of(files), user=None)
    assert not bad.committed and [row["file"] for row in bad.rejected] == [f"images/{doc['images'][0]['file_name']}"]
    assert "'<bad>' is not a tag" in bad.rejected[0]["error"]


def test_reimporting_an_export_into_its_own_project_finds_every_image_a_duplicate():
    project = _reviewed_project(3)
    report = dataset_import(project=project, source=ImportSource(_export_bytes(project, format="coco"), name="e.zip"),
                            user=None)
    assert report.images_added == 0 and len(report.duplicates) == 3


def test_coco_export_loads_and_evaluates_with_pycocotools(tmp_path):
    project = _reviewed_project()
    version = add_model_version(project)
    circle = LabelClass.objects.get(project=project, name="circle")
    # Predictions equal to the truth on every image, plus a low-score stray: mAP must be 1.
    for image in Image.objects.filter(project=project):
        Prediction.objects.bulk_create(
            [Prediction(image=image, model_version=version, label_class_id=a.label_class_id, x=a.x, y=a.y, w=a.w,
                        h=a.h, score=0.9) for a in image.annotations.all()]
            + [Prediction(image=image, model_version=version, label_class=circle, x=1, y=1, w=3, h=3, score=0.05)])
    truth = _export(project, format="coco", include_images=False)
    detections = _export(project, format="coco", source="predictions", model_version=version, include_images=False)
    assert truth.namelist() == ["annotations.json"]
    (tmp_path / "gt.json").write_bytes(truth.read("annotations.json"))
    gt = COCO(str(tmp_path / "gt.json"))
    assert len(gt.getImgIds()) == 5 and len(gt.getAnnIds()) == Annotation.objects.count()
    predicted = json.loads(detections.read("annotations.json"))
    # Same images in the same order, so ids line up; loadRes takes the detections list.
    assert [i["file_name"] for i in predicted["images"]] == [i["file_name"] for i in gt.dataset["images"]]
    evaluation = COCOeval(gt, gt.loadRes(predicted["annotations"]), "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)
    only_confident = _export(project, format="coco", source="predictions", model_version=version, min_score=0.5,
                             include_images=False)
    assert len(json.loads(only_confident.read("annotations.json"))["annotations"]) == Annotation.objects.count()


def test_yolo_layout_is_what_ultralytics_reads():
    project = _reviewed_project()
    archive = _export(project, format="yolo")
    data = yaml.safe_load(archive.read("data.yaml"))
    assert data == {"path": ".", "train": "images/train", "val": "images/val", "nc": 3,
                    "names": {0: "circle", 1: "square", 2: "triangle"}}
    images = [n for n in archive.namelist() if n.startswith("images/")]
    assert len(images) == 5
    for name in images:
        label = name.replace("images/", "labels/", 1).rsplit(".", 1)[0] + ".txt"
        rows = np.loadtxt(io.BytesIO(archive.read(label)), ndmin=2)
        assert rows.shape[1] == 5 and ((rows[:, 1:] >= 0) & (rows[:, 1:] <= 1)).all()
    splits = {n.split("/")[1] for n in images}
    holdout = Image.objects.filter(project=project, split="holdout").exists()
    assert splits <= {"train", "val"} and ("val" in splits) == holdout


def test_voc_layout():
    project = _reviewed_project(3)
    names = set(_export(project, format="voc").namelist())
    assert {"ImageSets/Main/train.txt", "ImageSets/Main/val.txt"} <= names
    assert len([n for n in names if n.startswith("Annotations/")]) == 3
    assert len([n for n in names if n.startswith("JPEGImages/")]) == 3


def test_snapshot_export_holds_exactly_the_frozen_labels():
    project = _reviewed_project(4)
    snapshot = snapshot_freeze(project=project, user=None)
    image = Image.objects.filter(project=project).first()
    image_boxes_save(image=image, user=None, version=image.version, boxes=[])  # changed after the freeze
    frozen = json.loads(_export(project, format="coco", source="snapshot", snapshot=snapshot,
                                include_images=False).read("annotations.json"))
    assert len(frozen["annotations"]) == snapshot.annotation_count
    assert len(frozen["images"]) == snapshot.image_count == 4


def test_archive_names_are_safe_and_unique_by_stem():
    names = archive_names([
        {"id": 1, "original_name": "a.jpg", "file": "x/1.jpg"},
        {"id": 2, "original_name": "a.png", "file": "x/2.png"},
        {"id": 3, "original_name": "../../etc/<b>.tif", "file": "x/3.png"},
        {"id": 4, "original_name": "..", "file": "x/4.jpg"},
    ])
    assert names == {1: "a-1.jpg", 2: "a-2.png", 3: "b.png", 4: "image.jpg"}


def test_an_export_of_chosen_images_holds_only_those():
    project = make_project()
    images = add_images(project, 4)
    for seed, image in enumerate(images):
        review_with_truth(image, seed=seed)
    out = io.BytesIO()
    summary = export_write(project=project, spec=ExportSpec(format="coco", image_ids=(images[1].pk, images[3].pk)),
                           out=out)
    with zipfile.ZipFile(out) as archive:
        doc = json.loads(archive.read("annotations.json"))
    assert summary.image_count == 2 and sorted(image["file_name"] for image in doc["images"]) == [
        "scene-1.png", "scene-3.png"]


def test_chosen_images_must_be_the_projects_and_a_snapshot_goes_whole():
    from django.core.exceptions import ValidationError

    from datasets.services import dataset_export_start

    project, other = make_project(), make_project()
    mine, theirs = add_images(project, 1)[0], add_images(other, 1, first_seed=5)[0]
    with pytest.raises(ValidationError, match="Not images of this project"):
        dataset_export_start(project=project, user=None, spec=ExportSpec(format="coco", image_ids=(mine.pk, theirs.pk)),
                             queue=False)
    with pytest.raises(ValidationError, match="exported whole"):
        dataset_export_start(project=project, user=None, spec=ExportSpec(format="coco", source="snapshot",
                                                                         image_ids=(mine.pk,)), queue=False)


def test_a_whole_project_export_asks_for_its_images_a_chunk_at_a_time(monkeypatch):
    """SQLite takes at most 32,766 parameters in one statement: no id list may grow with the project."""
    import re

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    import datasets.exports

    project = _reviewed_project(5)
    monkeypatch.setattr(datasets.exports, "CHUNK", 2)
    with CaptureQueriesContext(connection) as queries:
        archive = _export(project, format="coco")
    doc = json.loads(archive.read("annotations.json"))
    assert len(doc["images"]) == 5 and len({i["file_name"] for i in doc["images"]}) == 5
    in_lists = [part for q in queries.captured_queries for part in re.findall(r" IN \(([^()]*)\)", q["sql"])]
    assert in_lists and max(len(part.split(",")) for part in in_lists) <= 2
