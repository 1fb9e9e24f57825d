"""Suspected label errors: reviewed images where the newest model confidently disagrees with the humans.

Kinds, from the newest version that predicted the image (its BoxOutcomes):
- possibly_missed: a prediction scored >= SUSPECT_SCORE where no human box overlaps (IoU < 0.1);
- class_swap: a prediction scored >= SUSPECT_SCORE on a human box of another class;
- location: a prediction scored >= SUSPECT_SCORE overlapping its class's human box only partly;
- possibly_spurious: a human box that every version which predicted the image missed, when at least
  two did (one weak model missing everything is no evidence against the humans).
A reviewer resolves one by saving the image: a changed set of boxes confirms it (the labels were
wrong), an unchanged one dismisses it; or dismisses it directly. Resolved suspects are kept, and a
new derivation never reopens one (same image, version, kind and box), so the confirmation rate of
each kind measures how much to trust it.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from inference.models import BoxOutcome, OutcomeKind, SuspectedError, SuspectKind, SuspectStatus
from review.models import REVIEWED_STATUSES, Image

SUSPECT_SCORE = 0.8
NOTHING_THERE_IOU = 0.1
MIN_VERSIONS_FOR_SPURIOUS = 2
_FROM_PREDICTION = {OutcomeKind.FALSE_POSITIVE: SuspectKind.POSSIBLY_MISSED,
                    OutcomeKind.WRONG_CLASS: SuspectKind.CLASS_SWAP,
                    OutcomeKind.POOR_LOCALISATION: SuspectKind.LOCATION}


@transaction.atomic
def suspects_refresh(*, image_ids: Iterable[int]) -> int:
    """Re-derive the open suspects of these images from their outcomes; returns how many are open."""
    image_ids = list(image_ids)
    SuspectedError.objects.filter(image_id__in=image_ids, status=SuspectStatus.OPEN).delete()
    reviewed = set(Image.objects.filter(pk__in=image_ids, status__in=REVIEWED_STATUSES).values_list("pk", flat=True))
    outcomes = defaultdict(list)
    for outcome in (BoxOutcome.objects.filter(image_id__in=reviewed).select_related("model_version")
                    .order_by("image_id", "model_version__number", "id")):
        outcomes[outcome.image_id].append(outcome)
    resolved = _resolved_keys(reviewed)
    rows = []
    for image_id, judged in outcomes.items():
        newest = max(o.model_version.number for o in judged)
        versions = {o.model_version_id for o in judged}
        missed_by = defaultdict(set)
        for o in judged:
            if o.kind == OutcomeKind.MISSED:
                missed_by[o.annotation_id].add(o.model_version_id)
        for o in judged:
            if o.model_version.number != newest:
                continue
            kind = _kind(o, missed_by, versions)
            if kind and (image_id, o.model_version_id, kind, _box_key(o)) not in resolved:
                rows.append(SuspectedError(image_id=image_id, model_version_id=o.model_version_id, kind=kind,
                                           label_class_id=o.label_class_id, x=o.x, y=o.y, w=o.w, h=o.h,
                                           score=o.score))
    SuspectedError.objects.bulk_create(rows)
    return len(rows)


def _kind(outcome: BoxOutcome, missed_by: dict, versions: set) -> str | None:
    if outcome.kind == OutcomeKind.MISSED:
        unanimous = len(versions) >= MIN_VERSIONS_FOR_SPURIOUS and missed_by[outcome.annotation_id] == versions
        return SuspectKind.POSSIBLY_SPURIOUS if unanimous else None
    if outcome.kind not in _FROM_PREDICTION or (outcome.score or 0) < SUSPECT_SCORE:
        return None
    if outcome.kind == OutcomeKind.FALSE_POSITIVE and outcome.iou >= NOTHING_THERE_IOU:
        return None  # a duplicate of a box the humans drew: the model's mistake, not theirs
    return _FROM_PREDICTION[outcome.kind]


def _box_key(box) -> tuple:
    return tuple(round(v) for v in (box.x, box.y, box.w, box.h))


def _resolved_keys(image_ids: set[int]) -> set[tuple]:
    return {(s.image_id, s.model_version_id, s.kind, _box_key(s))
            for s in SuspectedError.objects.filter(image_id__in=image_ids).exclude(status=SuspectStatus.OPEN)}


def has_open_suspects(image: Image) -> bool:
    return SuspectedError.objects.filter(image=image, status=SuspectStatus.OPEN).exists()


def suspects_resolve(*, image: Image, user: AbstractBaseUser | None, labels_changed: bool) -> int:
    """A reviewer saved the image: changed boxes confirm its open suspects, unchanged ones dismiss them."""
    return SuspectedError.objects.filter(image=image, status=SuspectStatus.OPEN).update(
        status=SuspectStatus.CONFIRMED if labels_changed else SuspectStatus.DISMISSED, resolved_by=user,
        resolved_at=timezone.now())


def suspect_dismiss(*, suspect: SuspectedError, user: AbstractBaseUser | None) -> SuspectedError:
    """The reviewer looked again and the labels are right."""
    SuspectedError.objects.filter(pk=suspect.pk, status=SuspectStatus.OPEN).update(
        status=SuspectStatus.DISMISSED, resolved_by=user, resolved_at=timezone.now())
    suspect.refresh_from_db()
    return suspect


def suspect_rates(*, project_id: int) -> list[dict]:
    """Per kind: open, confirmed and dismissed counts and the confirmation rate (None before any resolution)."""
    counts = dict.fromkeys(SuspectKind.values)
    rows = (SuspectedError.objects.filter(image__project_id=project_id).order_by().values("kind")
            .annotate(open=Count("id", filter=Q(status=SuspectStatus.OPEN)),
                      confirmed=Count("id", filter=Q(status=SuspectStatus.CONFIRMED)),
                      dismissed=Count("id", filter=Q(status=SuspectStatus.DISMISSED))))
    for row in rows:
        counts[row["kind"]] = row
    result = []
    for kind, label in SuspectKind.choices:
        row = counts[kind] or {"open": 0, "confirmed": 0, "dismissed": 0}
        resolved = row["confirmed"] + row["dismissed"]
        result.append({"kind": kind, "label": label, "open": row["open"], "confirmed": row["confirmed"],
                       "dismissed": row["dismissed"],
                       "confirmation_rate": row["confirmed"] / resolved if resolved else None})
    return result
