"""Template filters: Chinese labels, 北京时间 from the store's UTC stamps, and safe link targets."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from django import template

from webapp import labels

register = template.Library()
CHINA = ZoneInfo("Asia/Shanghai")


@register.filter
def category(code: str | None) -> str:
    return labels.CATEGORY_NAMES.get(code or "", code or "")


@register.filter
def severity(code: str | None) -> str:
    return labels.SEVERITY_NAMES.get(code or "", code or "")


@register.filter
def status(code: str | None) -> str:
    return labels.STATUS_NAMES.get(code or "", code or "")


@register.filter
def source(code: str | None) -> str:
    return labels.SOURCE_NAMES.get(code or "", code or "")


@register.filter
def beijing(stamp: str | datetime | None) -> str:
    """'2026-11-28T11:18:35.201Z' (UTC) → '2026-11-28 19:18' 北京时间."""
    if not stamp:
        return ""
    if isinstance(stamp, str):
        try:
            dt = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            return stamp[:32]
    else:
        dt = stamp
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(CHINA).strftime("%Y-%m-%d %H:%M")


@register.filter
def web_url(url: str | None) -> str:
    """The URL when it is an http(s) address to link to; '' otherwise (javascript:, data:, …)."""
    u = (url or "").strip()
    return u if u.lower().startswith(("http://", "https://")) and len(u) < 2000 else ""


# bidirectional controls (LRE … RLO, LRI … PDI, LRM/RLM/ALM): shown as a visible mark, so a crawled
# "恶意机构\u202egnp.exe" reads as what it is instead of "恶意机构exe.png"
_BIDI = dict.fromkeys([*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C], "⟨方向控制符⟩")


@register.filter
def clip(text: str | None, n: int = 120) -> str:
    """Text from the crawled web for display: one line, bidi controls made visible, at most n
    characters (auto-escaping still applies)."""
    t = " ".join(str(text or "").translate(_BIDI).split())
    return t if len(t) <= n else t[: n - 1] + "…"


@register.filter
def shown(text: str | None) -> str:
    """``clip`` without a length limit."""
    return clip(text, 100_000)


RUN_STATUS = {"running": "运行中", "finished": "完成", "failed": "失败", "timeout": "超时", "interrupted": "中断",
              "skipped": "跳过"}
RUN_TRIGGER = {"schedule": "定时", "run-now": "手动", "rerun": "重跑"}


@register.filter
def run_status(code: str | None) -> str:
    return RUN_STATUS.get(code or "", code or "")


@register.filter
def run_trigger(code: str | None) -> str:
    return RUN_TRIGGER.get(code or "", code or "")


@register.filter
def explain_zh(explanation: list[str] | None) -> list[str]:
    return labels.explain_zh(explanation)


@register.filter
def schedule_zh(target) -> str:
    """A plan target's schedule in Chinese: 每 6 小时 / 定时（cron 0 3 * * *，时区 Asia/Shanghai）."""
    if getattr(target, "cron", None):
        return f"定时（cron {target.cron}，{target.timezone}）"
    s = int(getattr(target, "every", 0) or 0)
    for unit, name in ((86400, "天"), (3600, "小时"), (60, "分钟")):
        if s and s % unit == 0:
            return f"每 {s // unit} {name}"
    return f"每 {s} 秒"


@register.filter
def decision(code: str | None) -> str:
    """A proposed status as the proposal's words: 确认违规 / 排除（非违规）."""
    from webapp.models import DECISION_NAMES

    return DECISION_NAMES.get(code or "", labels.STATUS_NAMES.get(code or "", code or ""))


@register.filter
def file_name(url: str | None) -> str:
    """The last path segment of a URL (an ad image's file name), for telling ads apart."""
    return (url or "").split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1][:80]
