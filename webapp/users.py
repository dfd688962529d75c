"""Giving a user a role: its group (and so its permissions), admin rights, and its districts."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group

from webapp.models import Profile


def apply_role(user: Any, role: str, districts: list[str], *, changed_by: str = "") -> None:
    user.is_superuser = user.is_staff = role == "admin"
    user._changed_by = changed_by
    user.save()
    user.groups.set([Group.objects.get(name=role)])
    prof, _ = Profile.objects.get_or_create(user=user)
    prof.role = role
    prof.districts = [d for d in dict.fromkeys(d.strip() for d in districts) if d]
    prof._changed_by = changed_by
    prof.save()
