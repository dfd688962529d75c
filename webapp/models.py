"""The app's own tables: user profiles (role, districts, last visit) and the audit log.

Cases, their review proposals, decisions and history live in the store (``store.cases``), so the
command line and the app see one history; who may propose and who may approve is decided here
(the permissions on ``Rights``, given to the role groups)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

ROLES = (("investigator", "调查员"), ("supervisor", "督导"), ("admin", "管理员"))
ROLE_NAMES = dict(ROLES)
DECISIONS = (("confirmed", "确认违规"), ("dismissed", "排除（非违规）"))
DECISION_NAMES = dict(DECISIONS)


class Profile(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    role = models.CharField("角色", max_length=20, choices=ROLES, default="investigator")
    districts = models.JSONField("负责区县", default=list, blank=True)
    last_visit = models.DateTimeField("上次查看总览", null=True, blank=True)

    class Meta:
        verbose_name = verbose_name_plural = "用户资料"

    def __str__(self) -> str:
        return f"{self.user.username}（{ROLE_NAMES.get(self.role, self.role)}）"


class Rights(models.Model):
    """Holds the app's permissions (no table): the role groups are given these."""

    class Meta:
        managed = False
        default_permissions = ()
        verbose_name = verbose_name_plural = "权限"
        permissions = [
            ("propose_review", "可提出核查意见"),
            ("approve_review", "可审批核查意见"),
            ("export_evidence", "可导出证据包"),
            ("manage_scans", "可添加和立即运行扫描"),
            ("export_audit", "可导出审计日志"),
        ]


class AuditEntry(models.Model):
    """One append-only, hash-chained audit record (see ``webapp.audit``)."""

    seq = models.BigIntegerField("序号", unique=True)
    at = models.DateTimeField("时间")
    actor = models.CharField("操作人", max_length=150, blank=True, default="")
    action = models.CharField("操作", max_length=40)
    target = models.CharField("对象", max_length=300, blank=True, default="")
    detail = models.JSONField("详情", default=dict, blank=True)
    ip = models.CharField("来源地址", max_length=64, blank=True, default="")
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        verbose_name = verbose_name_plural = "审计日志"
        ordering = ["seq"]

    def save(self, *args, **kwargs):  # noqa: D401 - append-only
        if self.pk is not None and not kwargs.get("force_insert"):
            raise PermissionError("审计日志只能追加，不能修改")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("审计日志只能追加，不能删除")
