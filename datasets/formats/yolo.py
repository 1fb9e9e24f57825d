"""YOLO labels as the ultralytics trainer reads them.

Layout: `images/<split>/<name>.jpg` with `labels/<split>/<name>.txt` beside it, and `data.yaml`
naming the folders and the classes. Each label line is `class x_center y_center width height`, all
four as fractions of the image size; a model's detections add the confidence as a sixth column
(what ultralytics writes with `save_conf`). Class names may also come from `classes.txt` or
`obj.names` (one per line), as Darknet and CVAT export them.
"""
from __future__ import annotations

import yaml

from datasets.formats import Box, FormatError, ImageLabels, stem

SPLIT_FOLDERS = {"train": "train", "holdout": "val"}   # our split -> the folder ultralytics expects
NAME_FILES = ("data.yaml", "data.yml", "dataset.yaml", "classes.txt", "obj.names")


def read_names(data: bytes, *, file_name: str) -> list[str]:
    """Class names, in class-id order, from data.yaml (`names` as a list or {id: name}) or a names file."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"{file_name}: is not UTF-8 text.") from None
    if not file_name.lower().endswith((".yaml", ".yml")):
        names = [line.strip() for line in text.splitlines() if line.strip()]
    else:
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise FormatError(f"{file_name}: is not valid YAML ({str(exc).splitlines()[0]}).") from None
        names = doc.get("names") if isinstance(doc, dict) else None
        if isinstance(names, dict):
            if not all(isinstance(k, int) for k in names) or sorted(names) != list(range(len(names))):
                raise FormatError(f"{file_name}: 'names' must map the class ids 0, 1, 2, ... to names.")
            names = [names[k] for k in sorted(names)]
        if not isinstance(names, list):
            raise FormatError(f"{file_name}: needs 'names', the class names as a list or a mapping from id.")
        names = [str(name).strip() for name in names]
    if not names or any(not name for name in names) or len(set(names)) != len(names):
        raise FormatError(f"{file_name}: class names must be non-empty and unique.")
    return names


def read_labels(data: bytes, *, file_name: str, image_name: str, class_names: list[str]) -> ImageLabels:
    """One label file's boxes, still normalised; bad lines become the image's problems."""
    labels = ImageLabels(file_name=image_name, normalised=True)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        labels.problems.append(f"{file_name}: is not UTF-8 text")
        return labels
    for line_number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{file_name} line {line_number}"
        if len(fields) not in (5, 6):
            labels.problems.append(f"{where}: expected 'class x_center y_center width height [confidence]'")
            continue
        try:
            class_id = int(fields[0])
            cx, cy, w, h = (float(v) for v in fields[1:5])
            score = float(fields[5]) if len(fields) == 6 else None
        except ValueError:
            labels.problems.append(f"{where}: values must be numbers")
            continue
        if not 0 <= class_id < len(class_names):
            labels.problems.append(f"{where}: class id {class_id} is not one of the {len(class_names)} classes")
            continue
        # NaN stays NaN through this arithmetic, so box_problems still names it.
        labels.boxes.append(Box(class_names[class_id], cx - w / 2, cy - h / 2, w, h, score=score))
    return labels


def dump_labels(boxes: list[Box], *, width: int, height: int, class_names: list[str]) -> bytes:
    """A label file for boxes in pixels on a width x height image."""
    class_id = {name: number for number, name in enumerate(class_names)}
    lines = []
    for box in boxes:
        values = [(box.x + box.w / 2) / width, (box.y + box.h / 2) / height, box.w / width, box.h / height]
        line = f"{class_id[box.category]} " + " ".join(f"{v:.6f}" for v in values)
        if box.score is not None:
            line += f" {box.score:.5f}"
        lines.append(line)
    return ("\n".join(lines) + "\n" if lines else "").encode()


def dump_data_yaml(class_names: list[str]) -> bytes:
    """data.yaml for the exported folders; `path: .` means relative to this file, wherever it is unpacked."""
    doc = {
        "path": ".",
        "train": f"images/{SPLIT_FOLDERS['train']}",
        "val": f"images/{SPLIT_FOLDERS['holdout']}",
        "nc": len(class_names),
        "names": dict(enumerate(class_names)),
    }
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True).encode()


def label_path_for(image_path: str) -> str:
    """Where ultralytics looks for an image's labels: the last `images` folder replaced by `labels`, .txt."""
    parts = image_path.split("/")
    for index in range(len(parts) - 2, -1, -1):
        if parts[index] == "images":
            parts[index] = "labels"
            break
    parts[-1] = stem(parts[-1]) + ".txt"
    return "/".join(parts)

