"""Writes of the review app: projects, members, classes, images and the human boxes on them."""
from __future__ import annotations

import json
import math
import os
import re
from collections import namedtuple
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, connection, models, transaction
from django.db.models import Case, F, Q, QuerySet, Value, When
from django.db.models.deletion import get_candidate_relations_to_delete
from django.utils import timezone

from project.row_locks import update_lock, key_share_lock
from review import notifications
from review.image_files import ImageRejected, content_hash, normalise_image
from review.look_alikes import Look, RecentLooks, Seen
from review.models import (
    CORRECTION_KINDS, REPLACED_BOX_FIELDS, Annotation, AnnotationSource, Comment, Image, ImageLook, LabelClass,
    Membership, Mention, Project, ReviewEvent, ReviewStatus, Role, Split, StatusChange,
)
from review.signals import images_deleting, label_class_renamed, members_mentioned

# A readable, colour-blind-friendly palette; classes cycle through it.
PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324", "#808000", "#000075"]


class DuplicateImage(ValidationError):
    """The project already holds an image with the same bytes."""

    def __init__(self, existing: Image) -> None:
        super().__init__(f"This image is already in the project (as {existing.original_name!r}, id {existing.pk}).",
                         code="duplicate")
        self.existing = existing


class StaleImage(Exception):
    """Someone saved this image's boxes after the editor loaded it."""

    def __init__(self, image: Image) -> None:
        super().__init__(f"Image {image.pk} was saved by someone else; reload to see their boxes.")
        self.image = image


# --- Projects, members and classes -------------------------------------------------------------

@transaction.atomic
def project_create(*, name: str, owner: AbstractBaseUser, class_names: Sequence[str] = (),
                   holdout_fraction: float = 0.2) -> Project:
    """Create a project with its first manager and, optionally, its label classes."""
    project = Project(name=name.strip(), holdout_fraction=holdout_fraction)
    project.full_clean()
    project.save()
    Membership.objects.create(project=project, user=owner, role=Role.MANAGER)
    for name in class_names:
        label_class_create(project=project, name=name)
    return project


@transaction.atomic
def project_update(*, project: Project, **changes) -> Project:
    """Change a project's settings; only the fields a manager may edit."""
    # score_threshold: through inference.services.project_settings_update, which also ranks the queue again.
    editable = {"name", "description", "holdout_fraction", "retrain_after_reviews", "infer_on_upload",
                "promote_only_clear_gains", "tag_loss_limit", "score_threshold"}
    if unknown := sorted(set(changes) - editable):
        raise ValidationError({unknown[0]: "This field cannot be changed."})
    for name, value in changes.items():
        setattr(project, name, value.strip() if isinstance(value, str) else value)
    project.full_clean()
    project.save(update_fields=list(changes) or None)
    return project


@transaction.atomic
def project_delete(*, project: Project) -> None:
    """Delete a project with everything in it, and its stored files once the deletion is committed."""
    folder = f"projects/{project.pk}"
    # The project row first: a class delete of this project takes it too, so the two take turns
    # instead of each holding rows the other needs (project/row_locks.py).
    update_lock(Project.objects.filter(pk=project.pk))
    images = Image.objects.filter(project=project)
    update_lock(images)  # see images_delete
    images_deleting.send(sender=Image, images=images)
    # Human boxes keep their label class from being deleted (PROTECT); the project's go with its images.
    _annotations_delete(images)
    project.delete()
    transaction.on_commit(lambda: _storage_folder_delete(folder))


def _storage_folder_delete(folder: str) -> None:
    # Through the storage API (not os.walk) so S3-compatible storage is cleaned the same way. Not
    # guarded by exists(): an object store has no folder objects, so it says a folder of files is missing.
    try:
        subfolders, files = default_storage.listdir(folder)
    except FileNotFoundError:  # on disk, a folder nothing was ever stored in
        return
    for name in files:
        default_storage.delete(f"{folder}/{name}")
    for name in subfolders:
        _storage_folder_delete(f"{folder}/{name}")
    _empty_folder_remove(folder)


def _empty_folder_remove(folder: str) -> None:
    """Storage on disk keeps the folders its files were in; an object store has none to keep."""
    try:
        path = default_storage.path(folder)
    except NotImplementedError:
        return
    try:
        os.rmdir(path)
    except OSError:  # not empty: a file arrived meanwhile, and stays
        pass


@transaction.atomic
def membership_set(*, project: Project, user: AbstractBaseUser, role: str) -> Membership:
    """Add a member or change their role; a project always keeps at least one manager."""
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}; choose one of {', '.join(Role.values)}."})
    if role != Role.MANAGER:
        _keep_a_manager(project, leaving=user)
    membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    return membership


@transaction.atomic
def membership_remove(*, project: Project, user: AbstractBaseUser) -> None:
    """Take a user out of a project; the last manager cannot leave."""
    _keep_a_manager(project, leaving=user)
    Membership.objects.filter(project=project, user=user).delete()
    # Their assigned images go back to everyone: nobody else's "next image" would ever offer them.
    Image.objects.filter(project=project, assigned_to=user).update(assigned_to=None)
    Mention.objects.filter(user=user, image__project=project).delete()  # images they can no longer open


def _keep_a_manager(project: Project, *, leaving: AbstractBaseUser) -> None:
    # Lock the project's memberships so two managers demoting each other cannot both succeed.
    managers = list(Membership.objects.select_for_update().filter(project=project, role=Role.MANAGER)
                    .values_list("user_id", flat=True))
    if managers == [leaving.pk]:
        raise ValidationError({"role": "A project needs at least one manager; make someone else manager first."})


@transaction.atomic
def label_class_create(*, project: Project, name: str, colour: str | None = None) -> LabelClass:
    """Add a class after the last one. Models map their class ids to classes by name (ModelVersion.class_names)."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "A label class needs a name."})
    if LabelClass.objects.filter(project=project, name=name).exists():
        raise ValidationError({"name": f"A label class named {name!r} already exists in this project."})
    # Lock the project row so two concurrent creations do not pick the same index.
    Project.objects.select_for_update().filter(pk=project.pk).first()
    last = LabelClass.objects.filter(project=project).order_by("-index").values_list("index", flat=True).first()
    index = 0 if last is None else last + 1
    label_class = LabelClass(project=project, name=name, index=index, colour=colour or PALETTE[index % len(PALETTE)])
    label_class.full_clean()
    label_class.save()
    return label_class


@transaction.atomic
def label_class_update(*, label_class: LabelClass, name: str | None = None, colour: str | None = None) -> LabelClass:
    """Rename or recolour a class. Its index (the model's class id) never changes."""
    # The stored name, not the instance's: a form (the admin's) may have set the new one on it already.
    old_name = LabelClass.objects.filter(pk=label_class.pk).values_list("name", flat=True).get()
    if name is not None:
        name = name.strip()
        if not name:
            raise ValidationError({"name": "A label class needs a name."})
        clash = LabelClass.objects.filter(project_id=label_class.project_id, name=name).exclude(pk=label_class.pk)
        if clash.exists():
            raise ValidationError({"name": f"A label class named {name!r} already exists in this project."})
        label_class.name = name
    if colour is not None:
        label_class.colour = colour
    label_class.full_clean()
    label_class.save()
    if name is not None and name != old_name:
        label_class_renamed.send(sender=LabelClass, project_id=label_class.project_id, label_class=label_class,
                                 old_name=old_name, new_name=name)
    return label_class


@transaction.atomic
def label_class_delete(*, label_class: LabelClass) -> None:
    """Delete a class nobody has drawn yet; classes with human boxes are kept (the boxes are the truth)."""
    # First wait for a project delete (which would take this class's predictions too), then for a
    # box save or an inference batch that is writing rows of this class, so the count below sees its
    # boxes (project/row_locks.py). NO KEY: uploads into the project need not wait.
    update_lock(Project.objects.filter(pk=label_class.project_id), no_key=True)
    update_lock(LabelClass.objects.filter(pk=label_class.pk))
    if reason := label_class_in_use(label_class):
        raise ValidationError(reason)
    label_class.delete()


def label_class_in_use(label_class: LabelClass) -> str | None:
    """Why the class may not be deleted (human boxes use it), or None."""
    used = Annotation.objects.filter(label_class=label_class).count()
    return (f"{used} human box{'es' if used != 1 else ''} use {label_class.name!r}; relabel or delete them first."
            if used else None)


# --- Images -------------------------------------------------------------------------------------

def split_for_hash(content_hash_hex: str, holdout_fraction: float) -> str:
    """Deterministic split: the same bytes land in the same split in every project and every run."""
    position = int(content_hash_hex[:8], 16) / 0xFFFFFFFF
    return Split.HOLDOUT if position < holdout_fraction else Split.TRAIN


def image_duplicate_of(project: Project, data: bytes) -> Image | None:
    """The project's image with these bytes, as uploaded or as we stored them (so a re-imported export matches)."""
    digest = content_hash(data)
    return Image.objects.filter(Q(content_hash=digest) | Q(stored_hash=digest), project=project).first()


LOOK_SPLIT_RECENT = 64  # images added last whose split a look-alike joins (review/look_alikes.py's RecentLooks)


def recent_looks(project: Project) -> RecentLooks:
    """The looks and splits of the project's images added last, for image_prepare: a caller adding many
    images passes one to each, so that each sees the ones before it without reading them again."""
    rows = (Image.objects.filter(project=project).order_by("-created_at")  # the project's newest first (an index)
            .values_list("pk", "width", "height", "split", "original_name", "look__cells")[:LOOK_SPLIT_RECENT])
    return RecentLooks([(Look(width, height, bytes(cells), pk), split, name)
                        for pk, width, height, split, name, cells in reversed(rows) if cells is not None],
                       keep=LOOK_SPLIT_RECENT)


class LookAlike(Exception):
    """An image left out because it looks like one added just before (image_prepare's `refuse_look_alikes`)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"looks like {name}, added just before (a fixed camera's unchanged view)")
        self.name = name


def image_prepare(*, project: Project, data: bytes, filename: str, recent: RecentLooks | None = None,
                  refuse_look_alikes: bool = False) -> Image:
    """Validate, normalise and store one image's file; the row is returned unsaved (see image_create).

    Its split comes from its hash, unless it looks like one of the images added just before (`recent`,
    else the project's last ones): a fixed camera's next frame, which joins that image's split; with
    `refuse_look_alikes`, such a frame is not added at all (LookAlike).
    Raises DuplicateImage, LookAlike or ValidationError, and then stores nothing. A caller that does not
    save the row must delete its file (`image.file.delete(save=False)`).
    """
    existing = image_duplicate_of(project, data)
    if existing:
        raise DuplicateImage(existing)
    try:
        normalised = normalise_image(data, max_bytes=settings.MAX_IMAGE_BYTES, max_pixels=settings.MAX_IMAGE_PIXELS)
    except ImageRejected as exc:  # the caller names the file: reports list each under its name already
        raise ValidationError(str(exc), code="invalid_image") from None
    look = Look(normalised.width, normalised.height, normalised.look)
    recent = recent if recent is not None else recent_looks(project)
    if alike := recent.latest_alike(look):
        if refuse_look_alikes:  # compared with the images kept: a slow drift (dusk) is kept in steps
            raise LookAlike(alike[1])
        split = alike[0]
    else:
        split = split_for_hash(normalised.content_hash, project.holdout_fraction)
    name = display_name(filename)
    recent.add(look, split, name)
    image = Image(
        project=project,
        original_name=name,
        width=normalised.width,
        height=normalised.height,
        content_hash=normalised.content_hash,
        stored_hash=content_hash(normalised.content),
        split=split,
    )
    image.file.save(f"upload.{normalised.extension}", ContentFile(normalised.content), save=False)
    image.prepared_look = normalised.look  # saved beside the row by image_save_prepared
    return image


def image_save_prepared(image: Image) -> Image:
    """Save a row from image_prepare; a concurrent upload of the same bytes makes it a DuplicateImage."""
    try:
        with transaction.atomic():
            image.save()
            if cells := getattr(image, "prepared_look", None):
                ImageLook.objects.create(image=image, cells=cells)
    except IntegrityError:
        # A concurrent upload of the same bytes won the race; keep its row, drop our file.
        image.file.delete(save=False)
        raise DuplicateImage(Image.objects.get(project=image.project, content_hash=image.content_hash)) from None
    return image


def image_create(*, project: Project, data: bytes, filename: str, recent: RecentLooks | None = None) -> Image:
    """Validate, normalise and store one uploaded image. Raises ValidationError; stores nothing then."""
    return image_save_prepared(image_prepare(project=project, data=data, filename=filename, recent=recent))


@dataclass
class UploadReport:
    """What happened to each file of a batch upload."""

    added: list[Image] = field(default_factory=list)
    duplicates: list[tuple[str, Image]] = field(default_factory=list)  # (file name, the image already there)
    rejected: list[tuple[str, str]] = field(default_factory=list)      # (file name, why)
    ignored: list[tuple[str, str]] = field(default_factory=list)       # (file name, why): not image files
    committed: bool = True


@dataclass(frozen=True)
class UploadFile:
    name: str
    read: Callable[[], bytes]  # may raise ValueError (e.g. an archive entry that cannot be read)


class _RollBack(Exception):
    pass


def images_create_many(*, project: Project, files: Iterable[UploadFile], partial: bool = False) -> UploadReport:
    """Store a batch of images: all or nothing unless `partial`, when only the valid ones are kept.

    Duplicates are skipped and reported, never an error. Files are stored as they come (no batch is
    held in memory) and deleted again if the batch is rolled back.
    """
    report, recent = UploadReport(), recent_looks(project)
    try:
        with transaction.atomic():
            for upload in files:
                try:
                    report.added.append(image_create(project=project, data=upload.read(), filename=upload.name,
                                                     recent=recent))
                except DuplicateImage as exc:
                    report.duplicates.append((display_name(upload.name), exc.existing))
                except (ValidationError, ValueError) as exc:
                    messages = exc.messages if isinstance(exc, ValidationError) else [str(exc)]
                    report.rejected.append((display_name(upload.name), " ".join(messages)))
            if report.rejected and not partial:
                raise _RollBack
    except _RollBack:
        for image in report.added:
            image.file.delete(save=False)
        report.added, report.committed = [], False
    return report


@transaction.atomic
def image_delete(*, image: Image) -> None:
    """Delete an image, its boxes and predictions, and its stored file once the deletion is committed."""
    images_delete(images=Image.objects.filter(pk=image.pk))


@transaction.atomic
def images_delete(*, images: QuerySet[Image]) -> int:
    """Delete these images as image_delete does; returns how many there were."""
    # First wait for an inference batch or a box save that is writing rows on them (project/row_locks.py).
    ids = update_lock(images)
    locked = Image.objects.filter(pk__in=ids)
    files = [name for names in locked.values_list("file", "thumbnail") for name in names]
    images_deleting.send(sender=Image, images=locked)
    locked.delete()
    transaction.on_commit(lambda: _storage_files_delete(files))
    return len(ids)


def _storage_files_delete(names: list[str]) -> None:
    for name in names:
        if name:
            default_storage.delete(name)


@transaction.atomic
def image_status_set(*, image: Image, status: str, user: AbstractBaseUser | None, version: int | None = None,
                     comment: str = "") -> Image:
    """Approve a reviewed image, or send it back to the queue. Boxes are untouched.

    With `version` (the one the reviewer looked at), raises StaleImage if someone saved since, so
    nobody approves boxes they have not seen. `comment` (why, say) is added to the image with the change.
    """
    if status not in ReviewStatus.values:
        raise ValidationError({"status": f"Unknown status {status!r}; choose one of {', '.join(ReviewStatus.values)}."})
    comment = _comment_text(comment, required=False, field="comment")
    rows = Image.objects.filter(pk=image.pk)
    if version is not None:
        rows = rows.filter(version=version)
    if status == ReviewStatus.APPROVED:
        rows = rows.exclude(status=ReviewStatus.UNREVIEWED)  # checked in the update: a send-back may come first
    if not rows.update(status=status, version=F("version") + 1, **_RELEASED):
        image.refresh_from_db()
        if version is not None and image.version != version:
            raise StaleImage(image)
        raise ValidationError({"status": "Only a reviewed image can be approved; save its boxes first."})
    if comment:
        _comment_create(image, user, comment)
    image.refresh_from_db()
    StatusChange.objects.create(image=image, user=user, status=status, reviewed_by_id=image.reviewed_by_id)
    if status == ReviewStatus.UNREVIEWED:
        notifications.notify_later(kind="send_back", project_id=image.project_id, user_ids=[image.reviewed_by_id],
                                   author_id=user.pk if user else None, image_ids=[image.pk], text=comment)
    return image


_BATCH = 500  # ids per statement when changing many images: SQLite takes at most 32,766 parameters in one


def images_assign(*, project: Project, images: QuerySet[Image], assignee: AbstractBaseUser | None,
                  by: AbstractBaseUser | None = None) -> list[int]:
    """Give the unreviewed images among these to one member of `project` to review; returns their ids.

    Reviewed and approved images keep their assignee (one sent back goes back to them). `assignee`
    None gives the images back to everyone, whatever their status. The assignee is told by e-mail
    (unless they assigned them to themselves, `by`).
    """
    if assignee is not None and not Membership.objects.filter(project=project, user=assignee).exists():
        raise ValidationError({"assignee": f"{assignee.get_username()} is not a member of {project.name}."})
    chosen = images.filter(project=project)
    if assignee is not None:
        chosen = chosen.filter(status=ReviewStatus.UNREVIEWED)
    ids = list(chosen.values_list("pk", flat=True))
    for start in range(0, len(ids), _BATCH):
        Image.objects.filter(pk__in=ids[start:start + _BATCH]).update(assigned_to=assignee)
    if assignee is not None:
        notifications.notify_later(kind="assignment", project_id=project.pk, user_ids=[assignee.pk],
                                   author_id=by.pk if by else None, image_ids=ids)
    return ids


# Which images each status change applies to, when applied to many at once.
_CHANGEABLE_FROM = {
    ReviewStatus.APPROVED: [ReviewStatus.REVIEWED],
    ReviewStatus.UNREVIEWED: [ReviewStatus.REVIEWED, ReviewStatus.APPROVED],
}


@transaction.atomic
def images_status_set(*, images: QuerySet[Image], status: str, user: AbstractBaseUser | None,
                      comment: str = "") -> list[int]:
    """Approve the reviewed images among these, or send the reviewed and approved ones back to the queue.

    The others are left as they are (approving an unreviewed image would approve boxes nobody
    saved). Each change is recorded as image_status_set records it, `comment` added to each image.
    Returns the ids of the images changed.
    """
    if status not in _CHANGEABLE_FROM:
        raise ValidationError({"status": f"Many images at once can only be approved or sent back, not {status!r}."})
    comment = _comment_text(comment, required=False, field="comment")
    # Locked first: a save in progress on one of them finishes before its status is judged.
    ids = update_lock(images.filter(status__in=_CHANGEABLE_FROM[status]))
    now = timezone.now()
    project_id = Image.objects.filter(pk=ids[0]).values_list("project_id").get()[0] if ids else None
    mentioned = _mentioned_members(project_id, comment, author_id=user.pk if user else None) if comment and ids else set()
    sent_back: dict[int, list[int]] = {}  # reviewer -> their images sent back, for one e-mail each
    for start in range(0, len(ids), _BATCH):
        batch = Image.objects.filter(pk__in=ids[start:start + _BATCH])
        reviewed_by = list(batch.values_list("pk", "reviewed_by_id"))
        batch.update(status=status, version=F("version") + 1, comment_count=F("comment_count") + (1 if comment else 0),
                     **_RELEASED)
        StatusChange.objects.bulk_create([
            StatusChange(image_id=pk, user=user, status=status, reviewed_by_id=saved_by, created_at=now)
            for pk, saved_by in reviewed_by])
        if status == ReviewStatus.UNREVIEWED:
            for pk, saved_by in reviewed_by:
                sent_back.setdefault(saved_by, []).append(pk)
        if comment:
            comments = Comment.objects.bulk_create([Comment(image_id=pk, author=user, text=comment)
                                                    for pk, _ in reviewed_by])
            Mention.objects.bulk_create([Mention(comment_id=row.pk, image_id=row.image_id, user_id=user_id)
                                         for row in comments for user_id in mentioned])
    if mentioned:  # one event for the whole send-back, not one per image
        members_mentioned.send(sender=Comment, project_id=project_id, author=user, text=comment,
                               user_ids=sorted(mentioned), image_ids=ids)
    for reviewer, their_ids in sent_back.items():
        notifications.notify_later(kind="send_back", project_id=project_id, user_ids=[reviewer],
                                   author_id=user.pk if user else None, image_ids=their_ids, text=comment)
    return ids


def comment_add(*, image: Image, author: AbstractBaseUser | None, text: str) -> Comment:
    """A note on an image for whoever reviews it next."""
    return _comment_create(image, author, _comment_text(text, required=True, field="text"))


@transaction.atomic
def _comment_create(image: Image, author: AbstractBaseUser | None, text: str) -> Comment:
    Image.objects.filter(pk=image.pk).update(comment_count=F("comment_count") + 1)
    comment = Comment.objects.create(image=image, author=author, text=text)
    _mentions_sync(comment, image.project_id)
    return comment


@transaction.atomic
def comment_edit(*, comment: Comment, text: str) -> Comment:
    """Change a comment's text (its author's to do: the caller checks), marked as edited."""
    comment.text = _comment_text(text, required=True, field="text")
    comment.edited_at = timezone.now()
    comment.save(update_fields=["text", "edited_at"])
    _mentions_sync(comment, Image.objects.filter(pk=comment.image_id).values_list("project_id").get()[0])
    return comment


# @username, as Django's usernames are spelled (letters, digits and @ . + - _), not inside a word or address.
MENTION = re.compile(r"(?<![\w.@+-])@([\w.@+-]+)")


def _mentioned_members(project_id: int, text: str, *, author_id: int | None) -> set[int]:
    """The ids of the project's members that `text` names as @username (any case), its author aside."""
    written = MENTION.findall(text)
    if not written:
        return set()
    # "@bea." and "@bea," end a sentence or a list: the name is what comes before.
    names = {name.lower() for name in written} | {name.rstrip(".-+@").lower() for name in written}
    members = Membership.objects.filter(project_id=project_id).values_list("user_id", "user__username")
    return {user_id for user_id, username in members if username.lower() in names and user_id != author_id}


def _mentions_sync(comment: Comment, project_id: int) -> None:
    """Mentions follow the comment's text: new names are added, names taken out are dropped."""
    wanted = _mentioned_members(project_id, comment.text, author_id=comment.author_id)
    have = set(comment.mentions.values_list("user_id", flat=True)) if comment.edited_at else set()
    Mention.objects.filter(comment=comment, user_id__in=have - wanted).delete()
    Mention.objects.bulk_create([Mention(comment=comment, image_id=comment.image_id, user_id=user_id)
                                 for user_id in wanted - have])
    if wanted - have:
        members_mentioned.send(sender=Comment, project_id=project_id, author=comment.author, text=comment.text,
                               user_ids=sorted(wanted - have), image_ids=[comment.image_id])


def mentions_read(*, image: Image, user: AbstractBaseUser) -> int:
    """The user opened the image: its mentions of them are read. How many were unread.

    Opening an image writes nothing when nothing is unread (most images have no comments at all)."""
    if not image.comment_count:
        return 0
    unread = Mention.objects.filter(image=image, user=user, read_at__isnull=True)
    return unread.update(read_at=timezone.now()) if unread.exists() else 0


@transaction.atomic
def comment_delete(*, comment: Comment) -> None:
    if Comment.objects.filter(pk=comment.pk).delete()[0]:  # once, if two deletes race
        Image.objects.filter(pk=comment.image_id, comment_count__gt=0).update(comment_count=F("comment_count") - 1)


def _comment_text(text: str, *, required: bool, field: str) -> str:
    text = (text or "").strip()
    if required and not text:
        raise ValidationError({field: "Write something: the comment is empty."})
    limit = Comment._meta.get_field("text").max_length
    if len(text) > limit:
        raise ValidationError({field: f"A comment holds at most {limit} characters; this one has {len(text)}."})
    return text


# --- Who has which image open ------------------------------------------------------------------
# An image opened in the editor is held for its reviewer for REVIEW_HOLD_SECONDS, so that the next
# reviewer's "Save & next" opens another one. A hold only steers the queue: saves are still guarded
# by the image's version, so a hold that lapses or is ignored loses nobody's work.

_RELEASED = {"held_by": None, "held_until": None}


def _free_for(user: AbstractBaseUser, now) -> Q:
    return Q(held_until__isnull=True) | Q(held_until__lte=now) | Q(held_by=user)


def _hold(image_id: int, *, user: AbstractBaseUser, project_id: int, now, only_if: Q = Q()):
    """Hold image `image_id` for `user` unless another reviewer does (or `only_if` no longer holds),
    and let the user's previous image in the project go: a reviewer holds one image a project.

    One statement, so one commit and no lock order to keep between two. Returns when the hold ends,
    or None when `user` did not get it.
    """
    until = now + timedelta(seconds=settings.REVIEW_HOLD_SECONDS)
    this = Q(pk=image_id)
    Image.objects.filter(this & _free_for(user, now) & only_if | Q(project_id=project_id, held_by=user) & ~this).update(
        held_by=Case(When(this, then=Value(user.pk)), default=None),
        held_until=Case(When(this, then=Value(until)), default=None))
    return until if Image.objects.filter(this, held_by=user).exists() else None


def image_hold(*, image: Image, user: AbstractBaseUser) -> bool:
    """Hold `image` for `user` unless another reviewer does; returns whether `user` holds it now.

    `image` as just read: a hold "next" took moments ago is not written again, and another reviewer's
    hold is known without asking. `image.held_by` names the holder either way.
    """
    now = timezone.now()
    live = image.held_until is not None and image.held_until > now
    if live and image.held_by_id is not None and image.held_by_id != user.pk:
        return False
    if live and image.held_by_id == user.pk and image.held_until - now > timedelta(
            seconds=settings.REVIEW_HOLD_SECONDS / 2):
        return True
    until = _hold(image.pk, user=user, project_id=image.project_id, now=now)
    if until is None:
        image.refresh_from_db(fields=["held_by", "held_until"])  # another reviewer took it since it was read
        return False
    image.held_by, image.held_until = user, until
    return True


def image_release(*, image_id: int, user: AbstractBaseUser) -> None:
    """Let others have an image `user` holds (a skip). Nothing happens if someone else holds it."""
    Image.objects.filter(pk=image_id, held_by=user).update(**_RELEASED)


def image_next_for_review(*, project: Project, user: AbstractBaseUser, status: str = ReviewStatus.UNREVIEWED,
                          exclude: Iterable[int] = ()) -> Image | None:
    """The image `user` should open next, held for them; None when every candidate is excluded or held.

    Unreviewed images: those assigned to `user` first, then those assigned to nobody, the most urgent
    first in each; images assigned to other members are theirs. Reviewed images (the approval pass):
    the longest-waiting first, whoever they were assigned to. Images held by other reviewers, and those
    in `exclude` (skipped, or just saved), are passed over. So are unreviewed images that look like one
    reviewed lately or open in another reviewer's editor (a fixed camera's next, unchanged frame:
    review/look_alikes.py), among the next LOOK_SCAN of each pool, until only such images are left.
    """
    if status not in (ReviewStatus.UNREVIEWED, ReviewStatus.REVIEWED):
        raise ValidationError({"status": "The next image is an unreviewed one, or a reviewed one to approve."})
    order = ("reviewed_at", "id") if status == ReviewStatus.REVIEWED else ("-priority", "id")
    candidates = Image.objects.filter(project=project, status=status)
    # Two queries rather than one ordered by "mine first": each still walks the queue's index in order.
    pools = ([candidates.filter(assigned_to=user), candidates.filter(assigned_to__isnull=True)]
             if status == ReviewStatus.UNREVIEWED else [candidates])
    exclude, image = list(exclude), None
    pass_alikes = status == ReviewStatus.UNREVIEWED and settings.REVIEW_PASS_LOOK_ALIKES
    for _ in range(20):  # a lost race means another reviewer took that image just now: try the next one
        now = timezone.now()
        queues = [pool.filter(_free_for(user, now)).exclude(pk__in=exclude).order_by(*order) for pool in pools]
        seen = Seen(_looks_seen(project, user=user, now=now)) if pass_alikes else None
        image = next((found for queue in queues if (found := _first_unlike(queue, seen))), None) if seen else None
        image = image or next((found for queue in queues if (found := queue.only("id").first())), None)
        if image is None or _hold(image.pk, user=user, project_id=project.pk, now=now, only_if=Q(status=status)):
            return image
    return image


LOOK_SCAN = 200   # queued images looked at for one unlike those seen, in queue order
LOOK_RECENT = 100  # the project's images reviewed last (saved, or imported with labels) count as seen


def _looks_seen(project: Project, *, user: AbstractBaseUser, now) -> list[Look]:
    """The looks of the images reviewed lately in the project and of those open in other reviewers' editors."""
    saved = Image.objects.filter(project=project, reviewed_at__isnull=False).order_by("-reviewed_at").values_list(
        "pk", flat=True)[:LOOK_RECENT]  # image_reviewed_idx: the project's latest, however many projects
    open_elsewhere = Image.objects.filter(project=project, held_until__gt=now).exclude(held_by=user).values_list(
        "pk", flat=True)
    rows = ImageLook.objects.filter(Q(image_id__in=list(saved)) | Q(image_id__in=list(open_elsewhere)))
    return [Look(width, height, bytes(cells), image_id) for image_id, width, height, cells in
            rows.values_list("image_id", "image__width", "image__height", "cells")]


def images_looking_seen(*, project: Project, user: AbstractBaseUser, images: Iterable[Image]) -> dict[int, str]:
    """For the unreviewed ones of `images` (a queue page's), the name of the image reviewed lately or open in
    another editor that each looks like: the ones *Start reviewing* comes to later."""
    ids = [image.pk for image in images if image.status == ReviewStatus.UNREVIEWED]
    seen = _looks_seen(project, user=user, now=timezone.now()) if ids and settings.REVIEW_PASS_LOOK_ALIKES else []
    if not seen:
        return {}
    names = dict(Image.objects.filter(pk__in=[look.image_id for look in seen]).values_list("pk", "original_name"))
    checker, alike = Seen(seen), {}
    for pk, width, height, cells in ImageLook.objects.filter(image_id__in=ids).values_list(
            "image_id", "image__width", "image__height", "cells"):
        if (at := checker.alike_to(Look(width, height, bytes(cells), pk))) is not None:
            alike[pk] = names.get(seen[at].image_id, "")
    return alike


def _first_unlike(queue: QuerySet[Image], seen: Seen) -> Image | None:
    """The first image of `queue` that looks like none of `seen`, among its first LOOK_SCAN; images without a
    look (added before looks were kept) look like nothing."""
    start = 0
    for size in (1, 24, LOOK_SCAN - 25):  # the first image usually does: one row read, then more at a time
        rows = list(queue.only("id", "width", "height").annotate(cells=F("look__cells"))[start:start + size])
        for row in rows:
            if row.cells is None or not seen.looks_like_any(Look(row.width, row.height, bytes(row.cells), row.pk)):
                return row
        if len(rows) < size:
            return None
        start += size
    return None


def display_name(filename: str, fallback: str = "image") -> str:
    """An uploaded file's name as we show it: the last path component, no control characters.

    It is shown, never used as a path.
    """
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(ch for ch in base if ch.isprintable())[:255] or fallback


# --- Human boxes --------------------------------------------------------------------------------

@dataclass(frozen=True)
class BoxIn:
    """A box as the editor or the API sends it, in image pixels."""

    label_class_id: int
    x: float
    y: float
    w: float
    h: float
    source_prediction_id: int | None = None


@dataclass(frozen=True)
class BoxShown:
    """A prediction the reviewer was shown; used to count what they accepted, moved, relabeled or deleted."""

    prediction_id: int
    label_class_id: int
    x: float
    y: float
    w: float
    h: float


# Moving a box by less than this (pixels) still counts as accepting it unchanged.
MOVE_TOLERANCE_PX = 0.5


def boxes_validate(*, image: Image, boxes: Iterable[BoxIn]) -> list[BoxIn]:
    """Refuse NaN, non-positive sizes, boxes outside the image and classes of another project."""
    boxes = list(boxes)
    class_ids = set(LabelClass.objects.filter(project_id=image.project_id).order_by().values_list("id", flat=True))
    errors = []
    for number, box in enumerate(boxes):
        values = (box.x, box.y, box.w, box.h)
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            errors.append(f"box {number}: coordinates must be finite numbers")
        elif box.w <= 0 or box.h <= 0:
            errors.append(f"box {number}: width and height must be positive")
        elif box.x < 0 or box.y < 0 or box.x + box.w > image.width + 0.01 or box.y + box.h > image.height + 0.01:
            errors.append(f"box {number}: lies outside the {image.width}x{image.height} image")
        if box.label_class_id not in class_ids:
            errors.append(f"box {number}: label class {box.label_class_id} is not a class of this project")
    if errors:
        raise ValidationError({"boxes": errors})
    return boxes


def review_counts(*, boxes: Sequence[BoxIn], shown: Sequence[BoxShown]) -> dict[str, int]:
    """Compare the saved boxes with the predictions shown: accepted, moved, relabeled, deleted, added."""
    shown_by_id = {p.prediction_id: p for p in shown}
    counts = {"accepted": 0, "moved": 0, "relabeled": 0, "deleted": 0, "added": 0}
    kept = set()
    for box in boxes:
        prediction = shown_by_id.get(box.source_prediction_id) if box.source_prediction_id else None
        if prediction is None or prediction.prediction_id in kept:
            counts["added"] += 1
            continue
        kept.add(prediction.prediction_id)
        counts[_change(box, prediction)] += 1
    counts["deleted"] = len(shown_by_id) - len(kept)
    return counts


@transaction.atomic
def image_boxes_save(*, image: Image, user: AbstractBaseUser | None, boxes: Iterable[BoxIn], version: int,
                     shown: Sequence[BoxShown] = (), model_version_id: int | None = None,
                     seconds_spent: float = 0.0, source: str | None = None) -> Image:
    """Replace the human boxes of one image and record the review; raises StaleImage if someone saved first.

    Returns the image as saved, with `saved_boxes`: the boxes as written (with their ids), by id.
    """
    boxes = boxes_validate(image=image, boxes=boxes)
    counts = review_counts(boxes=boxes, shown=shown)
    corrections = sum(counts[kind] for kind in CORRECTION_KINDS)
    now = timezone.now()
    updated = Image.objects.filter(pk=image.pk, version=version).update(
        version=F("version") + 1, status=ReviewStatus.REVIEWED, reviewed_at=now, reviewed_by=user,
        correction_count=F("correction_count") + corrections, **_RELEASED,
    )
    if not updated:
        image.refresh_from_db()
        raise StaleImage(image)
    # The boxes' classes are held until this save commits, so a class delete waits and then sees the
    # boxes; one deleted since boxes_validate read it refuses the save (project/row_locks.py).
    used = {box.label_class_id for box in boxes}
    if gone := sorted(used - key_share_lock(LabelClass.objects.filter(pk__in=used))):
        raise ValidationError(f"Label class {gone[0]} was deleted while these boxes were being saved.")
    # The row now holds exactly these values: set them here rather than read the row back. The count
    # too, when this image was read at the version saved over: no other save came in between.
    if image.version == version:
        image.correction_count += corrections
    else:
        image.refresh_from_db(fields=["correction_count"])
    image.version, image.status, image.reviewed_at, image.reviewed_by = version + 1, ReviewStatus.REVIEWED, now, user
    image.held_by, image.held_until = None, None
    shown_by_id = {p.prediction_id: p for p in shown}
    replaced = _annotations_delete(Image.objects.filter(pk=image.pk), returning=True)
    image.saved_boxes = _annotations_insert(image, [
        (box.label_class_id, box.x, box.y, box.w, box.h, source or _annotation_source(box, shown_by_id),
         box.source_prediction_id)
        for box in boxes
    ], author=user, now=now)
    ReviewEvent.objects.create(
        image=image, user=user, model_version_id=model_version_id,
        seconds_spent=max(0.0, float(seconds_spent)), replaced=replaced, **counts,
    )
    return image


def _annotations_delete(images: QuerySet[Image], *, returning: bool = False) -> list[list] | None:
    """Delete the human boxes of these images, and the rows that refer to them, one statement per table.
    With `returning`, also answer the deleted boxes (as REPLACED_BOX_FIELDS, in the order they were made),
    read by the DELETE itself: keeping them costs a save no extra query.

    QuerySet.delete() first reads every box into a model object to cascade by id: for 50 boxes that
    was a quarter of a save's time. Every relation to Annotation cascades (error review's outcomes,
    which a worker recomputes after the save); one that does not must be handled here first.
    """
    boxes = Annotation.objects.filter(image__in=images)
    for relation in get_candidate_relations_to_delete(Annotation._meta):  # hidden ones too ("+"), as delete() does
        if relation.on_delete is not models.CASCADE:
            raise NotImplementedError(f"{relation.related_model.__name__}.{relation.field.name} does not cascade")
        relation.related_model._base_manager.filter(**{f"{relation.field.name}__in": boxes.values("pk")}).delete()
    image_ids, params = images.order_by().values("pk").query.sql_with_params()
    sql = f"DELETE FROM {Annotation._meta.db_table} WHERE image_id IN ({image_ids})"
    with connection.cursor() as cursor:
        if not returning:
            cursor.execute(sql, params)
            return None
        # RETURNING: PostgreSQL, and SQLite from 3.35.
        cursor.execute(f"{sql} RETURNING id, {', '.join(REPLACED_BOX_FIELDS)}", params)
        return [list(row[1:]) for row in sorted(cursor.fetchall())]


# The fields of a human box as _annotations_insert takes them, with their SQL types for PostgreSQL.
_ANNOTATION_COLUMNS = {"label_class_id": "bigint", "x": "double precision", "y": "double precision",
                       "w": "double precision", "h": "double precision", "source": "varchar",
                       "source_prediction_id": "bigint"}
SavedBox = namedtuple("SavedBox", ["id", *_ANNOTATION_COLUMNS])


def _annotations_insert(image: Image, rows: list[tuple], *, author: AbstractBaseUser | None, now) -> list:
    """Insert the human boxes of one image; returns them as written (with their ids), in order.

    On PostgreSQL one INSERT reads all boxes from a JSON array: bulk_create prepares every value of
    every row in Python and took 7 ms of a save's 33 ms for 50 boxes, this takes under 1 ms
    (bench/web.py). Elsewhere (SQLite, one user) bulk_create is fast enough.
    """
    if not rows:
        return []
    if connection.vendor != "postgresql":
        return Annotation.objects.bulk_create([
            Annotation(image=image, author=author, created_at=now, updated_at=now, **dict(zip(_ANNOTATION_COLUMNS, row)))
            for row in rows
        ])
    columns = ", ".join(_ANNOTATION_COLUMNS)
    types = ", ".join(f"{name} {sql_type}" for name, sql_type in _ANNOTATION_COLUMNS.items())
    with connection.cursor() as cursor:
        # The rows come out of the array in order, so ids rise in the order sent, as with bulk_create.
        cursor.execute(
            f"INSERT INTO {Annotation._meta.db_table} (image_id, author_id, created_at, updated_at, {columns}) "
            f"SELECT %s, %s, %s, %s, {columns} FROM json_to_recordset(%s) AS box({types}) RETURNING id, {columns}",
            [image.pk, author.pk if author else None, now, now,
             json.dumps([dict(zip(_ANNOTATION_COLUMNS, row)) for row in rows])])
        return sorted((SavedBox(*row) for row in cursor.fetchall()), key=lambda box: box.id)


def _change(box: BoxIn, prediction: BoxShown) -> str:
    """What the reviewer did to a prediction they kept: relabeled, moved or accepted."""
    if box.label_class_id != prediction.label_class_id:
        return "relabeled"
    shift = max(abs(box.x - prediction.x), abs(box.y - prediction.y),
                abs(box.w - prediction.w), abs(box.h - prediction.h))
    return "moved" if shift > MOVE_TOLERANCE_PX else "accepted"


def _annotation_source(box: BoxIn, shown_by_id: dict[int, BoxShown]) -> str:
    prediction = shown_by_id.get(box.source_prediction_id) if box.source_prediction_id else None
    if prediction is None:
        return AnnotationSource.DRAWN
    return AnnotationSource.ACCEPTED if _change(box, prediction) == "accepted" else AnnotationSource.EDITED
