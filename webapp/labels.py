"""Chinese names of the store's codes (the same words as the evidence report)."""

from __future__ import annotations

from evidence.report import CATEGORY_ZH, SEVERITY_ZH, SOURCE_ZH, STATUS_ZH

CATEGORY_NAMES = CATEGORY_ZH
SEVERITY_NAMES = SEVERITY_ZH
STATUS_NAMES = STATUS_ZH
SOURCE_NAMES = {"text": "网页文字", "image": "图片广告"}
SOURCE_LONG = SOURCE_ZH


def plan_error(stderr: str) -> str:
    """The one-line reason of a failed ``jianfu schedule add``, without the command's own prefix."""
    line = (stderr.strip().splitlines() or ["未知错误"])[-1]
    return line.split("error: ", 1)[-1][:300]


REVIEW_ACTIONS = {"set": "直接认定", "propose": "提出意见", "approve": "批准", "reject": "驳回",
                  "finding": "单条认定"}


def review_history(reviews: list[dict]) -> list[dict]:
    """The store's review rows for the case page, newest first, with Chinese words."""
    out = []
    for r in reversed(reviews):
        out.append({**r, "action_name": REVIEW_ACTIONS.get(r["action"], r["action"]),
                    "from_name": STATUS_NAMES.get(r["from_status"] or "", r["from_status"] or ""),
                    "to_name": STATUS_NAMES.get(r["to_status"] or "", r["to_status"] or "")})
    return out
