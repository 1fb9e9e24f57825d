"""Actions on many images at once, from the queue page and the images API: predict, assign, approve, send
back, tag, untag, export, delete.

A web-facing module (top floor, like queue.py): it starts inference runs and exports, which review's
services never do. The images are either named by id or are every image matching the queue's filters.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet

from datasets.exports import ExportSpec
from datasets.models import ExportSource
from datasets.services import dataset_export_start
from inference import services as inference_services
from inference.models import InferenceScope
from project.converters import MAX_ID, as_id
from review import services
from review.models import REVIEWED_STATUSES, Image, Membership, Project, ReviewStatus, Role
from review.queue import ImageFilter
from review.tags import image_tags_add, image_tags_remove, tag_names_clean

# What each action needs of the one who asks, and what it is called in messages.
ACTIONS = {
    "predict": (Role.REVIEWER, "Predict"),
    "assign": (Role.REVIEWER, "Assign"),
    "approve": (Role.REVIEWER, "Approve"),
    "send_back": (Role.REVIEWER, "Send back"),
    "tag": (Role.REVIEWER, "Tag"),
    "untag": (Role.REVIEWER, "Untag"),
    "export": (Role.MANAGER, "Export"),
    "delete": (Role.MANAGER, "Delete"),
}
# One request changes at most this many images: a larger delete or status change would hold its
# locks for long, and past it a run over all unreviewed images (project page, API) is the tool.
MAX_IMAGES = 10_000
DELETE_BATCH = 500  # images per delete: each deletes its rows' boxes, predictions and files in one go


@dataclass(frozen=True)
class BulkResult:
    action: str
    matched: int              # images selected
    changed: int              # images the action applied to
    skipped: int              # selected images it does not apply to (approving an unreviewed one, say)
    inference_run_id: int | None = None
    assignee: str = ""        # with assign: who was given them ("" for nobody)
    tags: tuple[str, ...] = ()  # with tag and untag: the tags given or taken off
    export_id: int | None = None

    def message(self) -> str:
        done = {"predict": "Queued for prediction", "approve": "Approved", "send_back": "Sent back",
                "delete": "Deleted", "assign": f"Assigned to {self.assignee or 'nobody'}",
                "export": f"Export #{self.export_id} queued", "tag": f"Tagged {', '.join(self.tags)}",
                "untag": f"Took {', '.join(self.tags)} off"}[self.action]
        text = f"{done}: {_images(self.changed)}" + (f" (run #{self.inference_run_id})" if self.inference_run_id else "")
        if self.skipped:
            text += f"; {_images(self.skipped)} left as they were ({_why_skipped.get(self.action, 'gone meanwhile')})"
        return text + "."


_why_skipped = {"approve": "only reviewed images can be approved",
                "assign": "only unreviewed images are assigned",
                "export": "only reviewed and approved images have labels to export",
                "send_back": "only reviewed or approved images can be sent back",
                "tag": "they had the tags already", "untag": "they did not have them"}


def _images(count: int) -> str:
    return f"{count} image{'' if count == 1 else 's'}"


def required_role(action: str) -> str:
    """The role `action` needs; ValidationError naming the choices for an unknown one."""
    if action not in ACTIONS:
        raise ValidationError({"action": f"Unknown action {action!r}; choose one of {', '.join(ACTIONS)}."})
    return ACTIONS[action][0]


def member_by_id(project: Project, user_id) -> AbstractBaseUser | None:
    """The project member with this id (who is to get images); None for a blank id (nobody)."""
    if user_id in (None, ""):
        return None
    if (pk := as_id(user_id)) is None:
        raise ValidationError({"assignee": f"{str(user_id)[:20]!r} is not a user id."})
    membership = Membership.objects.select_related("user").filter(project=project, user_id=pk).first()
    if membership is None:
        raise ValidationError({"assignee": f"User {user_id} is not a member of {project.name}."})
    return membership.user


def selected_images(project: Project, *, image_ids: Sequence[int] | None = None,
                    filters: Mapping | None = None) -> QuerySet[Image]:
    """The project's images named by id, or matching the queue's filters (exactly one of the two).

    Ids of other projects' images or of no image, and filters the queue does not know or
    understand, are refused: a bulk action never runs on a selection other than the one asked for.
    """
    if (image_ids is None) == (filters is None):
        raise ValidationError({"images": "Name the images, or give the filters that select them (one of the two)."})
    images = Image.objects.filter(project=project)
    if image_ids is not None:
        wanted = set(image_ids)
        if not wanted:
            raise ValidationError({"images": "Select at least one image."})
        if len(wanted) > MAX_IMAGES:
            raise ValidationError({"images": f"{len(wanted)} images named; at most {MAX_IMAGES} at once."})
        # An id too large for the database matches nothing (asked of the database, it overflows the driver).
        found = set(images.filter(pk__in={pk for pk in wanted if 1 <= pk <= MAX_ID}).values_list("pk", flat=True))
        if missing := sorted(wanted - found):
            raise ValidationError({"images": f"Not images of this project: {missing[:20]}"})
        return images.filter(pk__in=found)
    if unknown := sorted(set(filters) - set(ImageFilter.base_filters)):
        raise ValidationError({"filter": f"Unknown filters {unknown}; known: {', '.join(ImageFilter.base_filters)}."})
    filterset = ImageFilter(filters, queryset=images)
    if not filterset.is_valid():
        raise ValidationError({"filter": "; ".join(f"{name}: {' '.join(errors)}"
                                                   for name, errors in filterset.errors.items())})
    return filterset.qs


@transaction.atomic
def bulk_apply(*, project: Project, user: AbstractBaseUser, action: str, images: QuerySet[Image],
               comment: str = "", assignee: AbstractBaseUser | None = None,
               export_format: str = "coco", tags: list[str] | str | None = None) -> BulkResult:
    """Run `action` on `images` (from selected_images) as `user`, whose role the caller has checked.

    `assignee`: with assign, the member who gets the images (None: nobody, back to everyone).
    `export_format`: with export, coco, yolo or voc; the export holds the reviewed labels of the
    reviewed and approved images among them, and runs as a background job (the Import & export page).
    `tags`: with tag and untag, the tag names (a list, or separated by commas).

    All or nothing: a refusal (too many images, no active model) changes nothing.
    """
    required_role(action)
    names = tag_names_clean(tags) if action in ("tag", "untag") else []
    if action in ("tag", "untag") and not names:
        raise ValidationError({"tags": "Name the tags (a camera's name, night ...)."})
    ids = list(images.order_by("pk").values_list("pk", flat=True))
    if not ids:
        raise ValidationError({"images": "No images match; nothing was changed."})
    if len(ids) > MAX_IMAGES:
        raise ValidationError({"images": f"{len(ids)} images match; at most {MAX_IMAGES} at once. "
                                         "Narrow the filters, or predict all unreviewed images from the project page."})
    selection = Image.objects.filter(project=project, pk__in=ids)
    if action == "predict":
        run = inference_services.inference_run_create(project=project, user=user, scope=InferenceScope.IDS,
                                                      image_ids=ids)
        return BulkResult(action, len(ids), len(ids), 0, run.pk)
    if action == "assign":
        assigned = services.images_assign(project=project, images=selection, assignee=assignee, by=user)
        return BulkResult(action, len(ids), len(assigned), len(ids) - len(assigned),
                          assignee=assignee.get_username() if assignee else "")
    if action == "export":
        labelled = list(selection.filter(status__in=REVIEWED_STATUSES).values_list("pk", flat=True))
        if not labelled:
            raise ValidationError({"images": "None of these images is reviewed: there are no labels to export."})
        job = dataset_export_start(project=project, user=user, spec=ExportSpec(
            format=export_format, source=ExportSource.REVIEWED, image_ids=tuple(labelled)))
        return BulkResult(action, len(ids), len(labelled), len(ids) - len(labelled), export_id=job.pk)
    if action in ("tag", "untag"):
        change = image_tags_add if action == "tag" else image_tags_remove
        changed = change(project=project, images=selection, names=names)
        return BulkResult(action, len(ids), changed, len(ids) - changed, tags=tuple(names))
    if action == "delete":
        deleted = sum(services.images_delete(images=selection.filter(pk__in=ids[start:start + DELETE_BATCH]))
                      for start in range(0, len(ids), DELETE_BATCH))
        return BulkResult(action, len(ids), deleted, len(ids) - deleted)
    status = ReviewStatus.APPROVED if action == "approve" else ReviewStatus.UNREVIEWED
    changed = services.images_status_set(images=selection, status=status, user=user, comment=comment)
    # Sent back, an image has no truth to judge the models by; approved, its truth is settled.
    if changed:
        inference_services.box_outcomes_refresh_later(image_ids=changed)
    return BulkResult(action, len(ids), len(changed), len(ids) - len(changed))
