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
