"""The format readers and writers on hand-made files: no database."""
import json
import math

import pytest

from datasets.formats import Box, FormatError, ImageLabels, box_problems, clipped, coco, voc, yolo


def _coco(**overrides) -> bytes:
    doc = {
        "images": [{"id": 7, "file_name": "a.jpg", "width": 100, "height": 80}],
        "categories": [{"id": 3, "name": "cat"}, {"id": 1, "name": "dog"}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [10, 20, 30, 40]}],
    }
    doc.update(overrides)
    return json.dumps(doc).encode()


def test_coco_reads_classes_in_category_id_order_and_boxes_by_name():
    names, images = coco.read(_coco())
    assert names == ["dog", "cat"]
    assert images[0].file_name == "a.jpg" and (images[0].width, images[0].height) == (100, 80)
    assert images[0].boxes == [Box("cat", 10.0, 20.0, 30.0, 40.0)]


@pytest.mark.parametrize(("data", "message"), [
    (b"{not json", "is not valid JSON"),
    (b"[]", "'images' and 'categories' lists"),
    (_coco(categories=[{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]), "category id 1 is used twice"),
    (_coco(images=[{"id": 1, "file_name": "a.jpg", "width": 0, "height": 5}]), "positive integer width"),
    (_coco(annotations=[{"id": 9, "image_id": 99, "category_id": 3, "bbox": [0, 0, 1, 1]}]), "image id 99"),
    (_coco(annotations=[{"image_id": 7, "category_id": 3, "bbox": [0, 0, 1, 1], "score": 0.5},
                        {"image_id": 7, "category_id": 3, "bbox": [0, 0, 1, 1]}]), "some annotations have a 'score'"),
])
def test_coco_refuses_files_it_cannot_use(data, message):
    with pytest.raises(FormatError, match=message):
        coco.read(data)


def test_coco_problems_belong_to_their_image():
    names, images = coco.read(_coco(annotations=[
        {"id": 1, "image_id": 7, "category_id": 42, "bbox": [0, 0, 1, 1]},
        {"id": 2, "image_id": 7, "category_id": 3, "bbox": [0, 0, 1]},
        {"id": 3, "image_id": 7, "category_id": 3, "bbox": [0, 0, 1, 1], "iscrowd": 1},
    ]))
    assert images[0].boxes == []
    assert "unknown category id 42" in images[0].problems[0]
    assert "four numbers" in images[0].problems[1]
    assert len(images[0].problems) == 2  # the crowd region is skipped, not refused


def test_coco_dump_reads_back():
    labels = ImageLabels("x.png", [Box("b", 1.25, 2.5, 3.0, 4.0, score=0.9)], width=10, height=12, split="holdout")
    names, images = coco.read(coco.dump(["a", "b"], [labels]))
    assert names == ["a", "b"]
    assert images[0].boxes == labels.boxes and images[0].split == "holdout"


@pytest.mark.parametrize(("box", "message"), [
    (Box("a", float("nan"), 0, 1, 1), "finite"),
    (Box("a", 0, 0, 0, 5), "positive"),
    (Box("a", 0, 0, -1, 5), "positive"),
    (Box("a", 95, 0, 10, 5), "outside the 100x50 image"),
    (Box("a", 0, -3, 10, 5), "outside"),
    (Box("a", 0, 0, 10, 5, score=1.5), "score"),
])
def test_box_problems(box, message):
    assert message in box_problems([box], width=100, height=50)[0]


def test_boxes_within_half_a_pixel_of_the_edge_pass_and_are_clipped():
    box = Box("a", -0.3, 0, 100.6, 50.2)
    assert box_problems([box], width=100, height=50) == []
    assert clipped(box, width=100, height=50) == Box("a", 0.0, 0.0, 100.0, 50.0)


def test_yolo_names_from_yaml_list_mapping_and_text():
    assert yolo.read_names(b"names: [a, b]\n", file_name="data.yaml") == ["a", "b"]
    assert yolo.read_names(b"names:\n  0: a\n  1: b\n", file_name="data.yaml") == ["a", "b"]
    assert yolo.read_names(b"a\nb\n\n", file_name="classes.txt") == ["a", "b"]
    with pytest.raises(FormatError, match="0, 1, 2"):
        yolo.read_names(b"names:\n  0: a\n  2: b\n", file_name="data.yaml")
    with pytest.raises(FormatError, match="unique"):
        yolo.read_names(b"a\na\n", file_name="classes.txt")
    with pytest.raises(FormatError, match="YAML"):
        yolo.read_names(b"names: [a\n", file_name="data.yaml")


def test_yolo_labels_are_normalised_centres_and_bad_lines_are_problems():
    labels = yolo.read_labels(b"1 0.5 0.5 0.2 0.4\n0 0.1 0.1 0.1\n5 0.5 0.5 0.1 0.1\n0 a b c d\n",
                              file_name="labels/x.txt", image_name="images/x.jpg", class_names=["a", "b"])
    assert labels.normalised
    [box] = labels.in_pixels(200, 100)
    assert box.category == "b" and [round(v, 6) for v in (box.x, box.y, box.w, box.h)] == [80, 30, 40, 40]
    assert [p.split(":")[0] for p in labels.problems] == ["labels/x.txt line 2", "labels/x.txt line 3",
                                                          "labels/x.txt line 4"]


def test_yolo_dump_round_trips_within_its_precision():
    boxes = [Box("b", 10.123, 20.456, 30.789, 40.012), Box("a", 0, 0, 640, 480, score=0.25)]
    text = yolo.dump_labels(boxes, width=640, height=480, class_names=["a", "b"])
    back = yolo.read_labels(text, file_name="t", image_name="i", class_names=["a", "b"]).in_pixels(640, 480)
    for original, read in zip(boxes, back):
        assert read.category == original.category and read.score == original.score
        assert all(math.isclose(a, b, abs_tol=640 * 1e-6) for a, b in zip(
            (read.x, read.y, read.w, read.h), (original.x, original.y, original.w, original.h)))
    assert b"names:\n  0: a\n  1: b" in yolo.dump_data_yaml(["a", "b"])


def test_yolo_label_path_follows_ultralytics():
    assert yolo.label_path_for("images/train/a.b.jpg") == "labels/train/a.b.txt"
    assert yolo.label_path_for("ds/images/val/x.png") == "ds/labels/val/x.txt"


def test_voc_round_trip_and_problems():
    labels = ImageLabels("x.jpg", [Box("cat", 1.5, 2.25, 10, 20), Box("dog", 0, 0, 5, 5, score=0.75)],
                         width=64, height=48)
    back = voc.read(voc.dump(labels), file_name="x.xml")
    assert (back.file_name, back.width, back.height) == ("x.jpg", 64, 48)
    assert back.boxes == labels.boxes
    broken = voc.read(b"<annotation><filename>y.jpg</filename><object><name>a</name>"
                      b"<bndbox><xmin>one</xmin></bndbox></object></annotation>", file_name="y.xml")
    assert "numeric" in broken.problems[0]


@pytest.mark.parametrize(("data", "message"), [
    (b"<annotation><filename>a", "not valid Pascal VOC XML"),
    (b"<doc/>", "root element must be <annotation>"),
    (b"<annotation/>", "<filename> is missing"),
    (b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e "xxxxxxxx"><!ENTITY f "&e;&e;&e;&e;">]>'
     b"<annotation><filename>&f;</filename></annotation>", "not valid Pascal VOC XML"),
])
def test_voc_refuses_broken_and_entity_expanding_xml(data, message):
    with pytest.raises(FormatError, match=message):
        voc.read(data, file_name="a.xml")
