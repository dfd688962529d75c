"""Signal handlers: audit every login, failed login, logout and user change; make the role groups
and their permissions after each migrate."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import post_migrate, post_save, pre_delete
from django.dispatch import receiver

from webapp import audit
from webapp.models import Profile

User = get_user_model()

# role → the permissions of its group (codename in app "webapp"); admins are superusers
ROLE_PERMISSIONS = {
    "investigator": ("propose_review",),
    "supervisor": ("propose_review", "approve_review", "export_evidence", "manage_scans"),
    "admin": ("propose_review", "approve_review", "export_evidence", "manage_scans", "export_audit"),
}
# what a user change records: never the password hash itself, only that it changed
_WATCHED = ("username", "is_active", "is_staff", "is_superuser", "password")


@receiver(user_logged_in)
def _logged_in(sender, request, user, **kw):
    audit.log(request, "login", user.get_username())


@receiver(user_logged_out)
def _logged_out(sender, request, user, **kw):
    if user is not None:
        audit.record("logout", actor=user.get_username(), target=user.get_username(), ip=audit.request_ip(request))


@receiver(user_login_failed)
def _login_failed(sender, credentials, request=None, **kw):
    name = str(credentials.get("username", ""))[:150]
    audit.record("login_failed", actor="", target=name, ip=audit.request_ip(request))


def _snapshot(user) -> dict:
    return {k: getattr(user, k) for k in _WATCHED}


@receiver(post_save, sender=User)
def _user_saved(sender, instance, created, raw=False, **kw):
    if raw:
        return
    if created:
        audit.record("user_added", actor=getattr(instance, "_changed_by", ""), target=instance.username)
        return
    before = getattr(instance, "_audit_before", None)
    now = _snapshot(instance)
    changed = sorted(k for k in now if before is None or before.get(k) != now[k])
    changed = [c for c in changed if c != "last_login"]
    if changed:
        action = "user_disabled" if before and before["is_active"] and not now["is_active"] else "user_changed"
        audit.record(action, actor=getattr(instance, "_changed_by", ""), target=instance.username,
                     detail={"fields": changed})
    instance._audit_before = now


@receiver(post_save, sender=Profile)
def _profile_saved(sender, instance, created, raw=False, update_fields=None, **kw):
    # a new profile is filled in by the save that follows; the last visit to 总览 is not a user change
    if raw or created or (update_fields and set(update_fields) <= {"last_visit"}):
        return
    audit.record("user_changed", actor=getattr(instance, "_changed_by", ""), target=instance.user.username,
                 detail={"role": instance.role, "districts": list(instance.districts or [])})


@receiver(pre_delete, sender=User)
def _user_deleted(sender, instance, **kw):
    audit.record("user_deleted", actor=getattr(instance, "_changed_by", ""), target=instance.username)


def _remember_state(sender, instance, **kw):
    instance._audit_before = _snapshot(instance)


from django.db.models.signals import post_init  # noqa: E402

post_init.connect(_remember_state, sender=User)


@receiver(post_migrate)
def _roles(sender, **kw):
    if sender.name != "webapp":
        return
    from django.contrib.auth.models import Group, Permission

    for role, codenames in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        perms = Permission.objects.filter(content_type__app_label="webapp", codename__in=codenames)
        group.permissions.set(perms)
