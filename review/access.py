"""Who may see and do what in a project. Every view and API endpoint goes through here."""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.http import Http404

from review.models import ROLE_RANK, Membership, Project, Role


def membership_for(user: AbstractBaseUser, project_id: int) -> Membership | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.select_related("project").filter(project_id=project_id, user=user).first()


def project_for_member(user: AbstractBaseUser, project_id: int, *, role: str = Role.ANNOTATOR) -> Project:
    """The project if `user` is a member with at least `role`.

    Non-members get 404 (a project's existence is not disclosed); members with a lower role get 403.
    """
    membership = membership_for(user, project_id)
    if membership is None:
        raise Http404("No such project.")
    if ROLE_RANK[membership.role] < ROLE_RANK[role]:
        raise PermissionDenied(f"This needs the {role} role in {membership.project.name}; you are {membership.role}.")
    return membership.project
