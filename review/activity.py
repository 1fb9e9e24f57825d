"""What each member of a project did in a window of time: the team page and its API.

Read from the review record only: ReviewEvent (one per box save) and StatusChange (one per approval
or send-back). A save counts for whoever saved; an approval or a send-back counts for whoever gave it
and, as a verdict on their work, for whoever had saved the image last.
"""
from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Count, F, Max, Q, QuerySet, Sum
from django.utils import timezone

from review.models import Image, Membership, Project, ReviewEvent, ReviewStatus, StatusChange


# The windows the page offers, in days ("all": since the project began).
WINDOWS = ("1", "7", "30", "90", "365", "all")
DEFAULT_WINDOW = "7"


def window_start(days: str) -> datetime | None:
    """The start of a window of WINDOWS; anything else is refused."""
    if days not in WINDOWS:
        raise ValidationError({"days": f"Choose one of {', '.join(WINDOWS)}; got {days[:20]!r}."})
    return None if days == "all" else timezone.now() - timedelta(days=int(days))


@dataclass(frozen=True)
class MemberActivity:
    user_id: int
    username: str
    role: str | None                      # None: no longer a member of the project
    saves: int                            # box saves (an image saved again after a send-back counts twice)
    images: int                           # distinct images saved
    median_seconds: float | None          # editor time per save; the median, so one editor left open overnight
                                          # does not make a fast reviewer look slow
    corrections_per_image: float | None   # boxes moved, relabeled, deleted or added per save of a predicted image
    approved: int                         # images this member approved
    sent_back: int                        # images this member sent back
    theirs_approved: int                  # this member's reviews that someone approved
    theirs_sent_back: int                 # this member's reviews that someone sent back
    last_active: datetime | None
    assigned_waiting: int = 0             # unreviewed images assigned to them now (whatever the window)

    @property
    def theirs_sent_back_share(self) -> float | None:
        judged = self.theirs_approved + self.theirs_sent_back
        return self.theirs_sent_back / judged if judged else None


def team_activity(*, project: Project, since: datetime | None = None) -> list[MemberActivity]:
    """One row per member (and per former member who did something in the window), busiest first."""
    events = ReviewEvent.objects.filter(image__project=project, user__isnull=False)
    changes = StatusChange.objects.filter(image__project=project)
    if since is not None:
        events, changes = events.filter(created_at__gte=since), changes.filter(created_at__gte=since)
    predicted = Q(model_version_id__isnull=False)  # the corrections measure needs predictions to correct
    saves = {row["user_id"]: row for row in events.values("user_id").order_by().annotate(
        saves=Count("id"), images=Count("image_id", distinct=True), last=Max("created_at"),
        predicted=Count("id", filter=predicted),
        corrections=Sum(F("moved") + F("relabeled") + F("deleted") + F("added"), filter=predicted))}
    seconds = defaultdict(list)
    for user_id, spent in events.values_list("user_id", "seconds_spent"):
        seconds[user_id].append(spent)
    # A reviewer who approves their own save judges nobody's work: not counted as a verdict on theirs.
    given, received = _verdicts(changes, "user_id"), _verdicts(changes.exclude(user=F("reviewed_by")), "reviewed_by_id")
    last_change = dict(changes.filter(user__isnull=False).values("user_id").order_by()
                       .annotate(last=Max("created_at")).values_list("user_id", "last"))

    roles = dict(Membership.objects.filter(project=project).values_list("user_id", "role"))
    waiting = dict(Image.objects.filter(project=project, status=ReviewStatus.UNREVIEWED, assigned_to__isnull=False)
                   .values("assigned_to_id").order_by().annotate(n=Count("id")).values_list("assigned_to_id", "n"))
    user_ids = set(roles) | set(saves) | {user_id for user_id, _ in given | received if user_id is not None}
    names = dict(get_user_model().objects.filter(pk__in=user_ids).values_list("pk", "username"))
    rows = []
    for user_id in user_ids:
        done = saves.get(user_id, {})
        last = [moment for moment in (done.get("last"), last_change.get(user_id)) if moment is not None]
        rows.append(MemberActivity(
            user_id=user_id, username=names[user_id], role=roles.get(user_id),
            saves=done.get("saves", 0), images=done.get("images", 0),
            median_seconds=statistics.median(seconds[user_id]) if seconds[user_id] else None,
            corrections_per_image=done["corrections"] / done["predicted"] if done.get("predicted") else None,
            approved=given[user_id, ReviewStatus.APPROVED], sent_back=given[user_id, ReviewStatus.UNREVIEWED],
            theirs_approved=received[user_id, ReviewStatus.APPROVED],
            theirs_sent_back=received[user_id, ReviewStatus.UNREVIEWED],
            last_active=max(last) if last else None, assigned_waiting=waiting.get(user_id, 0),
        ))
    return sorted(rows, key=lambda row: (-row.saves, -(row.approved + row.sent_back), row.username))


def _verdicts(changes: QuerySet[StatusChange], who: str) -> Counter:
    """(user id, status) -> how many, for the giver (`user_id`) or the judged (`reviewed_by_id`)."""
    return Counter({(row[who], row["status"]): row["n"]
                    for row in changes.values(who, "status").order_by().annotate(n=Count("id"))})
