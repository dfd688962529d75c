"""The app's own tables: user profiles (role, districts, last visit), review proposals, audit log.

Cases and their status live in the store; a proposal names a case by its id and, once a
supervisor approves it, the decision is written to the store (``webapp.cases``)."""

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


class ReviewProposal(models.Model):
    case_id = models.CharField("线索编号", max_length=64, db_index=True)
    district = models.CharField("区县", max_length=200, blank=True, default="")
    decision = models.CharField("处理意见", max_length=20, choices=DECISIONS)
    reason = models.TextField("理由")
    proposed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                    related_name="proposals", verbose_name="提出人")
    proposed_at = models.DateTimeField("提出时间", auto_now_add=True)
    state = models.CharField("状态", max_length=20, default="pending",
                             choices=(("pending", "待审批"), ("approved", "已批准"), ("rejected", "已驳回")))
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="decisions", verbose_name="审批人")
    decided_at = models.DateTimeField("审批时间", null=True, blank=True)
    decision_note = models.TextField("审批意见", blank=True, default="")

    class Meta:
        verbose_name = verbose_name_plural = "核查意见"
        ordering = ["-proposed_at"]
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
