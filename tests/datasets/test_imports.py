"""Imports through the service: what is added, what is refused and why, and that refusals change nothing."""
import json
import os

import pytest

from datasets.formats import FormatError
from datasets.imports import dataset_import
from inference.models import ModelSource, ModelVersion, Prediction
from review.archives import ArchiveRejected
from review.models import Annotation, AnnotationSource, Image, LabelClass, ReviewStatus
from tests.datasets.helpers import coco_doc, json_source, scene_png, source_of
from tests.factories import add_images, make_project

pytestmark = pytest.mark.django_db


def _run(project, source, **options):
    return dataset_import(project=project, source=source, user=None, **options)


def _stored_files(media_root) -> set[str]:
    return {os.path.join(d, f) for d, _, files in os.walk(media_root) for f in files}


def _nothing_changed(project, media_root, before_files, before_classes):
    assert Image.objects.filter(project=project).count() == 0
    assert Annotation.objects.count() == 0
    assert LabelClass.objects.filter(project=project).count() == before_classes
    assert _stored_files(media_root) == before_files


def test_coco_zip_adds_images_classes_and_reviewed_boxes():
    project = make_project(class_names=["circle"])
    doc = coco_doc([("a.png", 96, 96), ("b.png", 96, 96)], [(0, "square", [1, 2, 30, 40]), (0, "circle", [5, 5, 9, 9])],
                   classes=("circle", "square"))
    report = _run(project, source_of({"images/a.png": scene_png(1), "images/b.png": scene_png(2),
                                      "images/c.png": scene_png(3), "annotations.json": json.dumps(doc).encode()}))
    assert report.committed and report.format == "coco"
    assert (report.images_added, report.images_labelled, report.boxes_added) == (3, 2, 2)
    assert report.classes_created == ["square"]
    a = Image.objects.get(project=project, original_name="a.png")
    assert a.status == ReviewStatus.REVIEWED  # labels from another tool are the truth
    assert Image.objects.get(original_name="b.png").status == ReviewStatus.REVIEWED  # listed with no boxes: negative
    assert Image.objects.get(original_name="c.png").status == ReviewStatus.UNREVIEWED  # not in the labels
    box = a.annotations.get(label_class__name="square")
    assert (box.x, box.y, box.w, box.h, box.source) == (1, 2, 30, 40, AnnotationSource.IMPORTED)


def test_coco_detections_become_predictions_of_an_external_model():
    project = make_project()
    [existing] = add_images(project, 1, size=96)  # scene 0, already in the project
    doc = coco_doc([("scene-0.png", 96, 96), ("new.png", 96, 96)],
                   [(0, "circle", [1, 1, 10, 10]), (1, "square", [2, 2, 20, 20])], score=0.45)
    report = _run(project, source_of({"scene-0.png": scene_png(0), "new.png": scene_png(5),
                                      "dets.json": json.dumps(doc).encode()}), model_name="yolov8 night")
    assert report.committed and report.predictions_added == 2 and report.boxes_added == 0
    version = ModelVersion.objects.get(pk=report.model_version_id)
    assert (version.source, version.note, bool(version.weights)) == (ModelSource.EXTERNAL, "yolov8 night", False)
    assert Prediction.objects.filter(model_version=version, image=existing).count() == 1  # duplicate: attached
    assert report.duplicates == [{"file": "scene-0.png", "existing_id": existing.pk}]
    existing.refresh_from_db()
    assert existing.status == ReviewStatus.UNREVIEWED and existing.uncertainty == pytest.approx(0.9)


def test_coco_file_alone_labels_images_already_in_the_project_but_never_a_reviewed_one():
    project = make_project()
    first, second = add_images(project, 2, size=96)
    second.status = ReviewStatus.REVIEWED
    second.save()
    doc = coco_doc([("scene-0.png", 96, 96), ("scene-1.png", 96, 96), ("elsewhere.png", 96, 96)],
                   [(0, "circle", [1, 1, 10, 10]), (1, "circle", [1, 1, 10, 10])])
    report = _run(project, json_source(doc), partial=True)
    assert report.committed and report.images_added == 0 and report.boxes_added == 1
    assert first.annotations.count() == 1 and second.annotations.count() == 0
    assert report.skipped == [{"file": "scene-1.png", "reason": "already reviewed in the project; its boxes are kept"}]
    assert report.rejected[0]["file"] == "elsewhere.png" and "neither in the archive" in report.rejected[0]["error"]


def test_yolo_zip_with_data_yaml():
    project = make_project(class_names=[])
    files = {
        "data.yaml": b"path: .\ntrain: images/train\nval: images/val\nnames: {0: car, 1: person}\n",
        "images/train/a.png": scene_png(1), "labels/train/a.txt": b"1 0.5 0.5 0.25 0.5\n",
        "images/val/b.png": scene_png(2), "labels/val/b.txt": b"",
        "images/val/c.png": scene_png(3),
        "labels/train/orphan.txt": b"0 0.5 0.5 0.1 0.1\n",
    }
    report = _run(project, source_of(files))
    assert report.committed and report.format == "yolo"
    assert report.classes_created == ["car", "person"]
    box = Annotation.objects.get()
    assert (box.label_class.name, box.x, box.y, box.w, box.h) == ("person", 36, 24, 24, 48)
    assert Image.objects.filter(status=ReviewStatus.REVIEWED).count() == 2  # a and b (empty label file)
    assert {"file": "labels/train/orphan.txt", "reason": "no image with this name"} in report.skipped


def test_voc_zip():
    project = make_project(class_names=[])
    xml = (b"<annotation><filename>a.png</filename><size><width>96</width><height>96</height><depth>3</depth></size>"
           b"<object><name>dog</name><bndbox><xmin>10</xmin><ymin>20</ymin><xmax>50.5</xmax><ymax>60</ymax>"
           b"</bndbox></object></annotation>")
    report = _run(project, source_of({"JPEGImages/a.png": scene_png(1), "Annotations/a.xml": xml}))
    assert report.committed and report.format == "voc" and report.classes_created == ["dog"]
    box = Annotation.objects.get()
    assert (box.x, box.y, box.w, box.h) == (10, 20, 40.5, 40)


@pytest.mark.parametrize(("files", "message"), [
    ({"a.png": scene_png(1), "l.json": json.dumps(coco_doc([("a.png", 96, 96)], [(0, "circle", [90, 1, 20, 10])]))},
     "lies outside the 96x96 image"),
    ({"a.png": scene_png(1), "l.json": json.dumps(coco_doc([("a.png", 96, 96)], [(0, "circle", [1, 1, 0, 10])]))},
     "width and height must be positive"),
    ({"a.png": scene_png(1), "l.json": json.dumps(coco_doc([("a.png", 96, 96)], [(0, "circle", [1, 1, -4, 10])]))},
     "width and height must be positive"),
    ({"a.png": scene_png(1),
      "l.json": json.dumps(coco_doc([("a.png", 96, 96)], [(0, "circle", [1, 1, 4, 10])])).replace('"category_id": 1',
                                                                                                 '"category_id": 9')},
     "unknown category id 9"),
    ({"a.png": scene_png(1), "l.json": json.dumps(coco_doc([("a.png", 50, 96)], []))},
     "labels are for a 50x96 image"),
    ({"a.png": b"<svg xmlns='http://www.w3.org/2000/svg'/>"}, "not an image in an accepted format"),
    ({"a.png": scene_png(1)[:300]}, "truncated or corrupt"),
    ({"data.yaml": b"names: [a]\n", "images/a.png": scene_png(1), "labels/a.txt": b"0 nan 0.5 0.1 0.1\n"},
     "finite numbers"),
])
def test_a_bad_file_refuses_the_whole_import_and_changes_nothing(media_root, files, message):
    project = make_project()
    good = {"good.png": scene_png(7)}
    before_files, before_classes = _stored_files(media_root), LabelClass.objects.filter(project=project).count()
    report = _run(project, source_of({**good, **files}))
    assert not report.committed
    assert any(message in r["error"] for r in report.rejected), report.rejected
    _nothing_changed(project, media_root, before_files, before_classes)


def test_malformed_json_refuses_everything():
    project = make_project()
    with pytest.raises(FormatError, match="is not valid JSON"):
        _run(project, source_of({"a.png": scene_png(1), "l.json": b'{"images": ['}))
    assert not Image.objects.exists()


def test_partial_keeps_each_valid_image_with_all_its_labels():
    project = make_project()
    doc = coco_doc([("a.png", 96, 96), ("b.png", 96, 96)],
                   [(0, "circle", [1, 1, 10, 10]), (1, "circle", [1, 1, 10, 10]), (1, "circle", [1, 1, 200, 10])])
    report = _run(project, source_of({"a.png": scene_png(1), "b.png": scene_png(2), "l.json": json.dumps(doc).encode()}),
                  partial=True)
    assert report.committed and report.images_added == 1
    assert [r["file"] for r in report.rejected] == ["b.png"]
    assert list(Image.objects.values_list("original_name", flat=True)) == ["a.png"]
    assert Annotation.objects.count() == 1  # none of b's boxes, not even its valid one


def test_duplicates_are_skipped_and_reported_with_their_labels_untouched():
    project = make_project()
    [existing] = add_images(project, 1, size=96)
    doc = coco_doc([("copy.png", 96, 96)], [(0, "circle", [1, 1, 10, 10])])
    report = _run(project, source_of({"copy.png": scene_png(0), "again.png": scene_png(0), "l.json": json.dumps(doc)}))
    assert report.committed and report.images_added == 0
    assert {d["existing_id"] for d in report.duplicates} == {existing.pk}
    assert not existing.annotations.exists()


@pytest.mark.parametrize(("entry", "message"), [
    ("../escape.png", "points outside the archive"),
    ("/etc/passwd.png", "points outside the archive"),
    ("a/../../escape.png", "points outside the archive"),
])
def test_archive_entries_escaping_the_folder_are_refused_before_anything_is_read(tmp_path, media_root, entry, message):
    project = make_project()
    before = _stored_files(media_root)
    with pytest.raises(ArchiveRejected, match=message):
        _run(project, source_of({"ok.png": scene_png(1), entry: scene_png(2)}))
    assert _stored_files(media_root) == before and not Image.objects.exists()
    assert not (tmp_path / "escape.png").exists() and not (media_root.parent / "escape.png").exists()


def test_archive_limits(settings):
    settings.MAX_ARCHIVE_ENTRIES = 2
    with pytest.raises(ArchiveRejected, match="limit is 2"):
        source_of({"a.png": b"1", "b.png": b"2", "c.png": b"3"})
    settings.MAX_ARCHIVE_ENTRIES, settings.MAX_ARCHIVE_BYTES = 100, 1000
    with pytest.raises(ArchiveRejected, match="unpacks to more than"):
        source_of({"a.png": scene_png(1)})


def test_not_a_zip_nor_json_is_refused():
    import io

    from datasets.imports import ImportSource
    with pytest.raises(ArchiveRejected, match="zip archive"):
        ImportSource(io.BytesIO(b"hello"), name="x.tar")
