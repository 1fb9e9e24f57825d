"""Images that look alike: a fixed camera's frames a second apart, where nothing moved.

A reviewer gains little from the tenth frame of the same scene: the model makes the same mistakes on
all of them, and one corrected frame teaches a fine-tune what the others would. So each image keeps a
`look` (ImageLook): its picture shrunk to LOOK_SIDE x LOOK_SIDE grey cells, each the mean of thousands
of pixels. Two images look alike when they have the same size, their overall brightness differs by
LOOK_EXPOSURE grey levels at most (a camera's auto-exposure; more is another light, dusk, which a
detector sees differently) and, that difference taken out, no cell differs by more than LOOK_TOLERANCE,
nor by more than LOOK_CONTRAST_SHARE of the pictures' contrast. An object that appears, leaves or moves
changes the cells it covers by far more (half a cell of a 1080p frame is about 1,000 pixels); sensor
noise and JPEG artifacts average out within a cell. The contrast rule is for night and fog: a dark,
flat frame's scenes differ by a few grey levels, no more than its noise does, so such frames never
look alike (the demo's night scenes: 15 of 60 looked like another with the first two rules only).

Three uses (review/services.py, datasets/imports.py): *Start reviewing* passes over the images that
look like one reviewed lately or open in another reviewer's editor until nothing else is left; an image
that looks like one added just before joins its split (RecentLooks), so that no scene is trained on
and held out at once; and an import may leave such images out. No Django here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import PIL.Image

LOOK_SIDE = 32        # 1,024 cells: 1 KB an image
LOOK_BYTES = LOOK_SIDE * LOOK_SIDE
LOOK_TOLERANCE = 10   # grey levels (of 255) a cell may differ by, brightness matched, and still look alike
LOOK_EXPOSURE = 16    # grey levels the whole picture may be brighter or darker by: more is dusk, not exposure
LOOK_CONTRAST_SHARE = 0.25  # and no more than this share of the picture's own contrast (its cells' spread)


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
    seen = Seen(references)
    return [seen.looks_like_any(candidate) for candidate in candidates]


class Seen:
    """Looks to compare others with, stacked once: a caller asking about one candidate at a time can stop
    at the first that looks like none of them."""

    def __init__(self, references: list[Look]) -> None:
        self._stacks = _stacks(references)

    def __bool__(self) -> bool:
        return bool(self._stacks)  # nothing seen (or only unreadable looks): nothing to pass over

    def looks_like_any(self, candidate: Look) -> bool:
        return _alike(candidate, self._stacks).size > 0

    def alike_to(self, candidate: Look) -> int | None:
        """The position, in the references, of the last one `candidate` looks like; None for none."""
        alike = _alike(candidate, self._stacks)
        return int(alike.max()) if alike.size else None


def _stacks(references: list[Look]) -> dict[tuple[int, int], tuple[np.ndarray, ...]]:
    """The references by size: their cells stacked, their image ids, their positions in the list and their
    contrasts (the spread of their cells)."""
    by_size: dict[tuple[int, int], list[tuple[int, Look]]] = {}
    for position, reference in enumerate(references):
        if len(reference.cells) == LOOK_BYTES:  # an image whose file could not be read has an empty look
            by_size.setdefault((reference.width, reference.height), []).append((position, reference))
    stacks = {}
    for size, group in by_size.items():
        cells = np.stack([np.frombuffer(r.cells, np.uint8) for _, r in group]).astype(np.int16)
        stacks[size] = (cells, np.array([-1 if r.image_id is None else r.image_id for _, r in group]),
                        np.array([position for position, _ in group]), cells.std(axis=1))
    return stacks


def _alike(candidate: Look, stacks) -> np.ndarray:
    """The positions (in the reference list) of the references `candidate` looks like."""
    cells, ids, positions, contrasts = stacks.get((candidate.width, candidate.height), (None, None, None, None))
    if cells is None or len(candidate.cells) != LOOK_BYTES:
        return np.zeros(0, dtype=np.int64)
    own = np.frombuffer(candidate.cells, np.uint8).astype(np.int16)
    difference = cells - own                                                          # (references, cells)
    exposure = np.rint(difference.mean(axis=1, keepdims=True)).astype(np.int16)
    tolerance = np.minimum(LOOK_TOLERANCE, LOOK_CONTRAST_SHARE * np.minimum(contrasts, own.std()))
    alike = (np.abs(difference - exposure).max(axis=1) <= tolerance) & (np.abs(exposure[:, 0]) <= LOOK_EXPOSURE)
    return positions[alike & (ids != (-2 if candidate.image_id is None else candidate.image_id))]


class RecentLooks:
    """The images added last to a project, with their splits, and each one added since: a frame that looks
    like one of them joins that image's split (the latest such), so that one scene of a fixed camera is not
    trained on and held out at once. Held-out images that look like training ones would score a model on
    what it learned, not on what it will meet: its holdout mAP would flatter it."""

    def __init__(self, looks: list[tuple[Look, str, str]], *, keep: int) -> None:
        self._looks = list(looks)[-keep:]  # (look, split, name)
        self._keep = keep

    def latest_alike(self, look: Look) -> tuple[str, str] | None:
        """(split, name) of the latest image `look` looks like; None when it looks like none of them."""
        alike = _alike(look, _stacks([seen for seen, _, _ in self._looks]))
        return self._looks[int(alike.max())][1:] if alike.size else None

    def add(self, look: Look, split: str, name: str) -> None:
        self._looks = self._looks[-(self._keep - 1):] + [(look, split, name)]
