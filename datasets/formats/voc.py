"""Pascal VOC XML: one `<annotation>` file per image, boxes as `<bndbox>` xmin/ymin/xmax/ymax in pixels.

Layout as the VOC devkit and CVAT use it: `Annotations/<name>.xml`, `JPEGImages/<name>.jpg`,
`ImageSets/Main/train.txt` and `val.txt`. Coordinates are written as pixel edges with up to three
decimals and read back as written (the convention CVAT and Label Studio follow; no 1-based shift).
XML is parsed with defusedxml, so entity expansion (billion laughs) and external entities are refused.
A model's detections carry a `<score>` element per object, which other readers ignore.
"""
from __future__ import annotations

from xml.etree.ElementTree import Element, SubElement, tostring

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

from datasets.formats import Box, FormatError, ImageLabels

SPLIT_LISTS = {"train": "train", "holdout": "val"}


def read(data: bytes, *, file_name: str) -> ImageLabels:
    """One VOC file's image name, size and boxes; bad objects become the image's problems."""
    try:
        root = fromstring(data)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise FormatError(f"{file_name}: is not valid Pascal VOC XML ({exc}).") from None
    if root.tag != "annotation":
        raise FormatError(f"{file_name}: the root element must be <annotation>, not <{root.tag}>.")
    image_name = (root.findtext("filename") or "").strip()
    if not image_name:
        raise FormatError(f"{file_name}: <filename> is missing.")
    labels = ImageLabels(file_name=image_name)
    size = root.find("size")
    if size is not None:
        try:
            labels.width, labels.height = int(float(size.findtext("width"))), int(float(size.findtext("height")))
        except (TypeError, ValueError):
            labels.problems.append(f"{file_name}: <size> needs numeric <width> and <height>")
    for number, obj in enumerate(root.iter("object"), start=1):
        name = (obj.findtext("name") or "").strip()
        box = obj.find("bndbox")
        if not name or box is None:
            labels.problems.append(f"{file_name} object {number}: needs a <name> and a <bndbox>")
            continue
        try:
            xmin, ymin, xmax, ymax = (float(box.findtext(tag)) for tag in ("xmin", "ymin", "xmax", "ymax"))
            score = obj.findtext("score")
            score = None if score is None else float(score)
        except (TypeError, ValueError):
            labels.problems.append(f"{file_name} object {number}: <bndbox> needs numeric xmin, ymin, xmax, ymax")
            continue
        labels.boxes.append(Box(name, xmin, ymin, xmax - xmin, ymax - ymin, score=score))
    return labels


def dump(labels: ImageLabels, *, depth: int = 3) -> bytes:
    """The VOC XML for one image (boxes in pixels)."""
    root = Element("annotation")
    SubElement(root, "folder").text = "JPEGImages"
    SubElement(root, "filename").text = labels.file_name
    size = SubElement(root, "size")
    for tag, value in (("width", labels.width), ("height", labels.height), ("depth", depth)):
        SubElement(size, tag).text = str(value)
    SubElement(root, "segmented").text = "0"
    for box in labels.boxes:
        obj = SubElement(root, "object")
        SubElement(obj, "name").text = box.category
        SubElement(obj, "pose").text = "Unspecified"
        SubElement(obj, "truncated").text = "0"
        SubElement(obj, "difficult").text = "0"
        if box.score is not None:
            SubElement(obj, "score").text = _number(box.score, 5)
        bndbox = SubElement(obj, "bndbox")
        for tag, value in (("xmin", box.x), ("ymin", box.y), ("xmax", box.x + box.w), ("ymax", box.y + box.h)):
            SubElement(bndbox, tag).text = _number(value, 3)
    return tostring(root, encoding="utf-8", xml_declaration=True)


def _number(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}".rstrip("0").rstrip(".")
    return text or "0"
