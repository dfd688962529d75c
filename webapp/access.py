"""Who may see what: roles (Django groups and permissions) and districts, checked in every view.

An admin (superuser) sees every district; everyone else sees only the districts in their
profile. A case outside them is a 403 — the same as a page the role may not use — and the
denial is audited."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from webapp import audit
from webapp.models import ROLE_NAMES, Profile


def profile(user: Any) -> Profile:
    try:
        return user.profile
    except Profile.DoesNotExist:
        return Profile.objects.create(user=user, role="admin" if user.is_superuser else "investigator")


def role(user: Any) -> str:
    return "admin" if user.is_superuser else profile(user).role


def districts(user: Any) -> list[str] | None:
    """The districts this user may see; None means all (admin)."""
    if user.is_superuser:
        return None
    return [d for d in (profile(user).districts or []) if d]


def may_see_district(user: Any, district: str | None) -> bool:
    allowed = districts(user)
    return allowed is None or (district or "") in allowed


def deny(request: HttpRequest, what: str, **detail: Any) -> PermissionDenied:
    audit.log(request, "denied", what, path=request.path[:300], **detail)
    return PermissionDenied(what)


def require_perm(codename: str) -> Callable:
    """View decorator: a 403 (audited) unless the user's role has the permission."""

    def wrap(view: Callable) -> Callable:
        @wraps(view)
        def inner(request: HttpRequest, *args: Any, **kwargs: Any):
            if not request.user.has_perm(f"webapp.{codename}"):
                raise deny(request, f"perm:{codename}")
            return view(request, *args, **kwargs)

        return inner

    return wrap


def nav_context(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "role_name": ROLE_NAMES.get(role(user), ""),
        "user_districts": districts(user),
        "can_approve": user.has_perm("webapp.approve_review"),
        "can_export": user.has_perm("webapp.export_evidence"),
        "can_manage_scans": user.has_perm("webapp.manage_scans"),
        "can_export_audit": user.has_perm("webapp.export_audit"),
    }
