"""Images that look alike: a fixed camera's frames a second apart, where nothing moved.

A reviewer gains little from the tenth frame of the same scene: the model makes the same mistakes on
all of them, and one corrected frame teaches a fine-tune what the others would. So each image keeps a
`look` (ImageLook): its picture shrunk to LOOK_SIDE x LOOK_SIDE grey cells, each the mean of thousands
of pixels. Two images look alike when they have the same size, their overall brightness differs by
LOOK_EXPOSURE grey levels at most (a camera's auto-exposure; more is another light, dusk, which a
detector sees differently) and, that difference taken out, no cell differs by more than LOOK_TOLERANCE. An object that appears, leaves or moves changes the cells it covers by far more (half a cell
of a 1080p frame is about 1,000 pixels); sensor noise and JPEG artifacts average out within a cell.

*Start reviewing* passes over the images that look like one saved lately or open in another
reviewer's editor (review.services.image_next_for_review) until nothing else is left. No Django here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import PIL.Image

LOOK_SIDE = 32        # 1,024 cells: 1 KB an image
LOOK_BYTES = LOOK_SIDE * LOOK_SIDE
LOOK_TOLERANCE = 10   # grey levels (of 255) a cell may differ by, brightness matched, and still look alike
LOOK_EXPOSURE = 16    # grey levels the whole picture may be brighter or darker by: more is dusk, not exposure


@dataclass(frozen=True)
class Look:
    """What an image looks like, for comparing it with others: its size and its grey cells."""
    width: int
    height: int
    cells: bytes
    image_id: int | None = None  # an image never counts as looking like itself (one sent back after a save)


def look_cells(picture: PIL.Image.Image) -> bytes:
    """The picture as LOOK_SIDE x LOOK_SIDE grey cells, each the mean of the pixels it covers."""
    return picture.convert("L").resize((LOOK_SIDE, LOOK_SIDE), PIL.Image.Resampling.BOX).tobytes()


def alike_to_any(candidates: list[Look], references: list[Look]) -> list[bool]:
    """For each candidate, whether it looks like any of the references (other than itself)."""
    by_size: dict[tuple[int, int], list[Look]] = {}
    for reference in references:
        if len(reference.cells) == LOOK_BYTES:  # an image whose file could not be read has an empty look
            by_size.setdefault((reference.width, reference.height), []).append(reference)
    stacks = {size: (np.stack([np.frombuffer(r.cells, np.uint8) for r in group]).astype(np.int16),
                     np.array([-1 if r.image_id is None else r.image_id for r in group]))
              for size, group in by_size.items()}
    found = []
    for candidate in candidates:
        cells, ids = stacks.get((candidate.width, candidate.height), (None, None))
        if cells is None or len(candidate.cells) != LOOK_BYTES:
            found.append(False)
            continue
        difference = cells - np.frombuffer(candidate.cells, np.uint8).astype(np.int16)   # (references, cells)
        exposure = np.rint(difference.mean(axis=1, keepdims=True)).astype(np.int16)
        alike = (np.abs(difference - exposure).max(axis=1) <= LOOK_TOLERANCE) & (np.abs(exposure[:, 0]) <= LOOK_EXPOSURE)
        found.append(bool((alike & (ids != (candidate.image_id or -2))).any()))
    return found
