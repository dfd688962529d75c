"""The audit log: every login, failed login, case view, review decision, export and user change.

Each entry's hash is SHA-256 over the previous entry's hash and the entry's own fields in a
canonical JSON form; ``seq`` is unique, so two writers cannot both extend the same entry (the loser
retries on top of the winner). ``verify()`` walks the chain from the first entry: an edited,
deleted, inserted or reordered row breaks it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, transaction

GENESIS = "0" * 64
ACTIONS = {
    "login": "登录", "login_failed": "登录失败", "logout": "退出", "case_view": "查看线索",
    "review_proposed": "提出核查意见", "review_approved": "批准核查意见", "review_rejected": "驳回核查意见",
    "evidence_export": "导出证据包", "audit_export": "导出审计日志", "user_added": "新增用户",
    "user_changed": "修改用户", "user_disabled": "停用用户", "user_deleted": "删除用户",
    "scan_target_added": "添加扫描目标", "scan_run_now": "立即扫描", "denied": "拒绝访问",
}


def entry_hash(prev_hash: str, seq: int, at: str, actor: str, action: str, target: str,
               detail: dict[str, Any], ip: str) -> str:
    body = json.dumps([seq, at, actor, action, target, detail, ip], ensure_ascii=False,
                      separators=(",", ":"), sort_keys=True)
    return hashlib.sha256((prev_hash + "\n" + body).encode("utf-8")).hexdigest()


def _stamp(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="microseconds")


def record(action: str, *, actor: str = "", target: str = "", detail: dict[str, Any] | None = None,
           ip: str = "") -> None:
    """Append one entry; retried when another writer took the same sequence number."""
    from webapp.models import AuditEntry

    detail = json.loads(json.dumps(detail or {}, ensure_ascii=False, default=str))
    for _ in range(20):
        try:
            with transaction.atomic():
                last = AuditEntry.objects.order_by("-seq").only("seq", "hash").first()
                seq, prev = (last.seq + 1, last.hash) if last else (1, GENESIS)
                at = datetime.now(UTC)
                e = AuditEntry(seq=seq, at=at, actor=actor[:150], action=action, target=target[:300],
                               detail=detail, ip=ip[:64], prev_hash=prev)
                e.hash = entry_hash(prev, seq, _stamp(at), e.actor, action, e.target, detail, e.ip)
                e.save(force_insert=True)
                return
        except IntegrityError:
            continue
    raise RuntimeError("audit log: could not append (too much contention)")


def request_ip(request: Any) -> str:
    return (request.META.get("REMOTE_ADDR") or "") if request is not None else ""


def log(request: Any, action: str, target: str = "", **detail: Any) -> None:
    user = getattr(request, "user", None)
    actor = user.get_username() if user is not None and user.is_authenticated else ""
    record(action, actor=actor, target=target, detail=detail, ip=request_ip(request))


@dataclass
class Verdict:
    ok: bool
    entries: int
    problem: str = ""


def verify() -> Verdict:
    """Walk the chain; the first broken link is reported in one Chinese line."""
    from webapp.models import AuditEntry

    prev, expected_seq, n = GENESIS, 1, 0
    for e in AuditEntry.objects.order_by("seq").iterator(chunk_size=2000):
        n += 1
        if e.seq != expected_seq:
            return Verdict(False, n, f"第 {expected_seq} 条记录缺失（下一条是第 {e.seq} 条）")
        if e.prev_hash != prev:
            return Verdict(False, n, f"第 {e.seq} 条记录与前一条记录的链接不符")
        h = entry_hash(e.prev_hash, e.seq, _stamp(e.at), e.actor, e.action, e.target, e.detail, e.ip)
        if h != e.hash:
            return Verdict(False, n, f"第 {e.seq} 条记录被改动过（哈希不符）")
        prev, expected_seq = e.hash, expected_seq + 1
    return Verdict(True, n)
