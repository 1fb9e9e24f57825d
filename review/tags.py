"""Tags: names for slices of a project's images (a camera, a site, night, rain), so that a reviewer can
work one slice and a manager can see how each model version does on each (training/selectors.py).

Images get tags when they come in (an upload's, an import's or a bucket watch's `tags`) and from the
queue's bulk actions (tag, untag). A tag belongs to one project; it is made the first time an image gets
it and goes when its last image loses it. Managers rename one (onto another's name: the two become one,
a typo mended) or delete it (off every image) on the project's settings page or through the API.
"""
from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, QuerySet

from review.models import Image, Project, Tag

MAX_TAGS = 20  # named in one request, or given to one import
MAX_SLICES = 20  # tags a model's scores are broken down by, those with most images first
# Letters, digits and the few separators a camera's or a site's name uses ("gate-2", "site a/north"):
# no quotes, brackets or commas (a comma separates names), nothing a page or a shell could misread.
TAG_NAME = re.compile(r"[\w][\w .:/+-]{0,49}")


def tag_names_clean(value: str | Iterable[str] | None, *, field: str = "tags") -> list[str]:
    """The tag names in `value` (a list, or one string separated by commas), stripped and without repeats;
    a ValidationError naming `field` for a name that is not one."""
    if value is None:
        return []
    names = [value] if isinstance(value, str) else list(value)
    if not all(isinstance(name, str) for name in names):
        bad = next(name for name in names if not isinstance(name, str))
        raise ValidationError({field: f"A tag is a name, not {bad!r}."})
    cleaned = []
    for name in (part for name in names for part in name.split(",")):  # "gate, night" is two
        name = " ".join(name.split())
        if not name:
            continue
        if not TAG_NAME.fullmatch(name):
            raise ValidationError({field: f"{name[:60]!r} is not a tag: up to 50 letters, digits, spaces and "
                                          "- _ . : / +, starting with a letter or digit."})
        if name not in cleaned:
            cleaned.append(name)
    if len(cleaned) > MAX_TAGS:
        raise ValidationError({field: f"At most {MAX_TAGS} tags at once (got {len(cleaned)})."})
    return cleaned


@transaction.atomic
def image_tags_add(*, project: Project, images: QuerySet[Image], names: list[str]) -> int:
    """Give these images of `project` the named tags (made if new); returns how many images gained one."""
    image_ids = list(images.filter(project=project).values_list("pk", flat=True))
    if not names or not image_ids:
        return 0  # no tag is made without an image
    for name in names:
        Tag.objects.get_or_create(project=project, name=name)
    tags = list(Tag.objects.filter(project=project, name__in=names).values_list("pk", flat=True))
    through = Image.tags.through
    had = set(through.objects.filter(image_id__in=image_ids, tag_id__in=tags).values_list("image_id", "tag_id"))
    rows = [through(image_id=image_id, tag_id=tag_id) for image_id in image_ids for tag_id in tags
            if (image_id, tag_id) not in had]
    through.objects.bulk_create(rows, batch_size=1000, ignore_conflicts=True)  # a tag given meanwhile: the same
    return len({row.image_id for row in rows})


@transaction.atomic
def image_tags_remove(*, project: Project, images: QuerySet[Image], names: list[str]) -> int:
    """Take the named tags off these images of `project`; a tag left on no image goes. Returns how many
    images lost one."""
    tags = Tag.objects.filter(project=project, name__in=names)
    through = Image.tags.through
    rows = through.objects.filter(tag__in=tags, image__in=images.filter(project=project))
    changed = rows.values("image_id").distinct().count()
    rows.delete()
    tags.filter(images__isnull=True).delete()
    return changed


@transaction.atomic
def tag_rename(*, tag: Tag, name: str) -> Tag:
    """Give the tag another name; to the name of another tag of the project, its images join that one and
    this one goes ("nite" into "night"). Returns the tag the images now have."""
    names = tag_names_clean([name], field="name")
    if len(names) != 1:
        raise ValidationError({"name": "Give one tag name (no commas)."})
    [name] = names
    if name == tag.name:
        return tag
    other = Tag.objects.filter(project_id=tag.project_id, name=name).first()
    if other is None:
        tag.name = name
        tag.save(update_fields=["name"])
        return tag
    image_tags_add(project=tag.project, images=tag.images.all(), names=[name])
    tag.delete()
    return other


def tag_delete(*, tag: Tag) -> None:
    """Take the tag off every image; the images stay."""
    tag.delete()


def tags_with_counts(project: Project) -> QuerySet[Tag]:
    """The project's tags by name, each with `image_count`."""
    return Tag.objects.filter(project=project).annotate(image_count=Count("images")).order_by("name")


def images_by_tag(image_ids: list[int]) -> dict[str, list[int]]:
    """The tags of these images, the MAX_SLICES with most of them first, each with its images among them:
    the slices a model's scores are broken down by."""
    tagged: dict[str, list[int]] = defaultdict(list)
    for name, image_id in Image.tags.through.objects.filter(image_id__in=image_ids).values_list("tag__name",
                                                                                                 "image_id"):
        tagged[name].append(image_id)
    return dict(sorted(tagged.items(), key=lambda item: (-len(item[1]), item[0]))[:MAX_SLICES])


def project_tags(project: Project) -> list[str]:
    """The names of the project's tags, in order."""
    return list(Tag.objects.filter(project=project).order_by("name").values_list("name", flat=True))
