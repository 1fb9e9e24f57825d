"""COCO object-detection JSON (https://cocodataset.org/#format-data), as pycocotools reads it.

Boxes are `bbox: [x, y, width, height]` in pixels; category ids are the file's own. Annotations that
carry a `score` are a model's detections, the rest human labels; one file may not mix the two.
Crowd regions (`iscrowd: 1`) are not objects to detect and are skipped.
"""
from __future__ import annotations

import json
from collections.abc import Iterable

from datasets.formats import Box, FormatError, ImageLabels


def read(data: bytes, *, file_name: str = "annotations.json") -> tuple[list[str], list[ImageLabels]]:
    """Parse a COCO file: (class names in category-id order, labels per image)."""
    try:
        doc = json.loads(data)
    except UnicodeDecodeError:
        raise FormatError(f"{file_name}: is not UTF-8 text.") from None
    except json.JSONDecodeError as exc:
        raise FormatError(f"{file_name}: is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}).") \
            from None
    if not isinstance(doc, dict) or not all(isinstance(doc.get(key), list) for key in ("images", "categories")):
        raise FormatError(f"{file_name}: a COCO file is an object with 'images' and 'categories' lists.")
    categories = _categories(doc["categories"], file_name)
    images = _images(doc["images"], file_name)
    annotations = doc.get("annotations", [])
    if not isinstance(annotations, list):
        raise FormatError(f"{file_name}: 'annotations' must be a list.")
    scored = {isinstance(a, dict) and "score" in a for a in annotations}
    if len(scored) > 1:
        raise FormatError(f"{file_name}: some annotations have a 'score' and some do not; import a model's "
                          "detections and human labels as separate files.")
    for number, annotation in enumerate(annotations):
        _add_annotation(annotation, number, images, categories, file_name)
    return [categories[k] for k in sorted(categories)], list(images.values())


def _categories(raw: list, file_name: str) -> dict[int, str]:
    categories: dict[int, str] = {}
    for number, category in enumerate(raw):
        if not isinstance(category, dict) or not _is_int(category.get("id")) \
                or not isinstance(category.get("name"), str) or not category["name"].strip():
            raise FormatError(f"{file_name}: category {number} needs an integer 'id' and a 'name'.")
        if category["id"] in categories:
            raise FormatError(f"{file_name}: category id {category['id']} is used twice.")
        categories[category["id"]] = category["name"].strip()
    if len(set(categories.values())) != len(categories):
        raise FormatError(f"{file_name}: two categories share a name; names must be unique.")
    return categories


def _images(raw: list, file_name: str) -> dict[int, ImageLabels]:
    images: dict[int, ImageLabels] = {}
    for number, image in enumerate(raw):
        if not isinstance(image, dict) or not _is_int(image.get("id")) \
                or not isinstance(image.get("file_name"), str) or not image["file_name"]:
            raise FormatError(f"{file_name}: image {number} needs an integer 'id' and a 'file_name'.")
        if image["id"] in images:
            raise FormatError(f"{file_name}: image id {image['id']} is used twice.")
        width, height = image.get("width"), image.get("height")
        if not (_is_int(width) and _is_int(height) and width > 0 and height > 0):
            raise FormatError(f"{file_name}: image {image['file_name']!r} needs a positive integer width and height.")
        split = image.get("split") if image.get("split") in ("train", "holdout") else None
        tags = image.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
            raise FormatError(f"{file_name}: image {image['file_name']!r}: 'tags' must be a list of names.")
        images[image["id"]] = ImageLabels(file_name=image["file_name"], width=width, height=height, split=split,
                                          tags=tuple(tags))
    return images


def _add_annotation(annotation, number: int, images: dict[int, ImageLabels], categories: dict[int, str],
                    file_name: str) -> None:
    if not isinstance(annotation, dict):
        raise FormatError(f"{file_name}: annotation {number} is not an object.")
    image = images.get(annotation.get("image_id"))
    if image is None:
        raise FormatError(f"{file_name}: annotation {annotation.get('id', number)} names image id "
                          f"{annotation.get('image_id')!r}, which the file does not list.")
    if annotation.get("iscrowd"):
        return
    label = f"annotation {annotation.get('id', number)}"
    if annotation.get("category_id") not in categories:
        image.problems.append(f"{label}: unknown category id {annotation.get('category_id')!r}")
        return
    bbox = annotation.get("bbox")
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
        image.problems.append(f"{label}: 'bbox' must be four numbers [x, y, width, height]")
        return
    score = annotation.get("score")
    if "score" in annotation and not _is_number(score):
        image.problems.append(f"{label}: 'score' must be a number")
        return
    image.boxes.append(Box(categories[annotation["category_id"]], *map(float, bbox),
                           score=None if score is None else float(score)))


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    # NaN and infinities pass here on purpose: box_problems names them per box.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def dump(class_names: list[str], images: Iterable[ImageLabels], *, description: str = "") -> bytes:
    """A COCO file: categories 1..N in `class_names` order, images 1..M, boxes rounded to 1/1000 px."""
    category_of = {name: number for number, name in enumerate(class_names, start=1)}
    doc_images, doc_annotations = [], []
    for image_id, image in enumerate(images, start=1):
        entry = {"id": image_id, "file_name": image.file_name, "width": image.width, "height": image.height}
        if image.split:
            entry["split"] = image.split
        if image.tags:
            entry["tags"] = list(image.tags)
        doc_images.append(entry)
        for box in image.boxes:
            annotation = {
                "id": len(doc_annotations) + 1, "image_id": image_id, "category_id": category_of[box.category],
                "bbox": [round(box.x, 3), round(box.y, 3), round(box.w, 3), round(box.h, 3)],
                "area": round(box.w * box.h, 3), "iscrowd": 0,
            }
            if box.score is not None:
                annotation["score"] = round(box.score, 5)
            doc_annotations.append(annotation)
    doc = {
        "info": {"description": description},
        "licenses": [],
        "categories": [{"id": number, "name": name, "supercategory": ""} for name, number in category_of.items()],
        "images": doc_images,
        "annotations": doc_annotations,
    }
    return json.dumps(doc, indent=1, allow_nan=False).encode()

