"""Who may see and do what in a project. Every view and API endpoint goes through here."""
from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db.models import Model, OuterRef, QuerySet, Subquery
from django.http import Http404
from django.shortcuts import get_object_or_404

from review.models import ROLE_RANK, Membership, Project, Role, project_being_deleted


def membership_for(user: AbstractBaseUser, project_id: int) -> Membership | None:
    if not user.is_authenticated:
        return None
    # A project being deleted is gone for everyone at once (review/project_deletion.py).
    return (Membership.objects.select_related("project").filter(project_id=project_id, user=user)
            .exclude(project_being_deleted("project_id")).first())


def project_for_member(user: AbstractBaseUser, project_id: int, *, role: str = Role.ANNOTATOR) -> Project:
    """The project if `user` is a member with at least `role`.

    Non-members get 404 (a project's existence is not disclosed); members with a lower role get 403.
    """
    return member_of(user, project_id, role=role).project


def member_of(user: AbstractBaseUser, project_id: int, *, role: str = Role.ANNOTATOR) -> Membership:
    """`user`'s membership of the project (its `project` selected) if it holds at least `role`; 404 or 403
    as project_for_member. For a page that checks access and then asks what else the role allows."""
    membership = membership_for(user, project_id)
    _require(membership and membership.role, role, lambda: membership.project.name)
    return membership


def object_for_member(user: AbstractBaseUser, queryset: QuerySet, pk: int, *, role: str = Role.ANNOTATOR) -> Model:
    """One object of a project (via its `project_id`) in which `user` holds `role`; 404 or 403 as above.

    The object and the user's role come in one query (the role as a subquery): on a save or a
    thumbnail that is a query fewer than reading the object, then the membership.
    """
    if not user.is_authenticated:
        raise Http404("No such project.")
    obj = get_object_or_404(queryset.annotate(requester_role=_role_in_project(user)), pk=pk)
    _require(obj.requester_role, role, lambda: obj.project.name)
    return obj


def _role_in_project(user: AbstractBaseUser) -> Subquery:
    return Subquery(Membership.objects.filter(project_id=OuterRef("project_id"), user_id=user.pk)
                    .exclude(project_being_deleted("project_id")).values("role")[:1])


def _require(held: str | None, role: str, project_name: Callable[[], str]) -> None:
    if held is None:
        raise Http404("No such project.")
    if ROLE_RANK[held] < ROLE_RANK[role]:
        raise PermissionDenied(f"This needs the {role} role in {project_name()}; you are {held}.")
