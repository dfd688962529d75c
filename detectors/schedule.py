"""Chinese times, days and lesson lengths, for the ``off_hours_schedule`` rules.

``parse_times("每晚7:00-9:00")`` → one :class:`TimeSpan` ending at 21:00; "晚上9点半",
"21:30下课", "下午五点到晚上八点四十" are understood. Rest days (周六, 周末, 暑假, 寒假, 国庆…) are
plain words in the rule packs; this module does the arithmetic the words cannot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
             "八": 8, "九": 9, "十": 10}

PM_WORDS = ("下午", "傍晚", "晚上", "晚间", "夜里", "夜间", "晚", "夜", "pm")
AM_WORDS = ("早上", "上午", "早晨", "清晨", "凌晨", "am")

_NUM = r"(?:\d{1,2}|[零〇一二两三四五六七八九十]{1,3})"
_PERIOD = r"(?:早上|上午|早晨|清晨|凌晨|中午|下午|傍晚|晚上|晚间|夜里|夜间|每晚|晚|夜|pm|am)"
TIME = (
    rf"(?:(?P<@per>{_PERIOD})\s*)?(?P<@h>{_NUM})\s*"
    rf"(?:[:.](?P<@m>\d{{2}})|点\s*(?:(?P<@half>半)|(?P<@q>一刻|三刻)|(?P<@m2>{_NUM})\s*分?)?|时)"
)
TIME_RE = re.compile(TIME.replace("@", "a"))
RANGE_RE = re.compile(
    TIME.replace("@", "a") + r"\s*(?:-|~|至|到|—)\s*" + TIME.replace("@", "b")
    + r"|" + TIME.replace("@", "c") + r"\s*(?P<cend>下课|结束|放学|散课|离校)?"
)


def cn_int(s: str) -> int | None:
    """'21' → 21, '九' → 9, '十一' → 11, '二十' → 20."""
    if not s:
        return None
    if s.isdigit():
        return int(s)
    if s == "十":
        return 10
    if "十" in s:
        a, _, b = s.partition("十")
        tens = CN_DIGITS.get(a, 1) if a else 1
        ones = CN_DIGITS.get(b, 0) if b else 0
        return tens * 10 + ones
    if all(c in CN_DIGITS for c in s):
        v = 0
        for c in s:
            v = v * 10 + CN_DIGITS[c]
        return v
    return None


@dataclass(frozen=True)
class TimeSpan:
    start: int | None  # minutes after midnight
    end: int | None
    text: str

    @property
    def latest(self) -> int | None:
        """The end of the class if known, else its start (a class starting late ends later)."""
        return self.end if self.end is not None else self.start


def _clock(m: re.Match[str], p: str, pm_hint: bool = False) -> int | None:
    h = cn_int(m.group(p + "h"))
    if h is None or h > 24:
        return None
    per = (m.group(p + "per") or "").lower()
    mins = 0
    if m.group(p + "m"):
        mins = int(m.group(p + "m"))
    elif m.group(p + "m2"):
        mins = cn_int(m.group(p + "m2")) or 0
    elif m.group(p + "half"):
        mins = 30
    elif m.group(p + "q"):
        mins = 15 if m.group(p + "q") == "一刻" else 45
    if mins >= 60:
        return None
    if (per in PM_WORDS or per == "每晚" or pm_hint) and h < 12:
        h += 12
    elif per == "中午" and h < 6:
        h += 12
    return h * 60 + mins


def parse_times(text: str) -> list[TimeSpan]:
    out = []
    for m in RANGE_RE.finditer(text):
        if m.group("ah") is not None:
            a = _clock(m, "a")
            b = _clock(m, "b")
            if a is not None and b is not None and b < a and b + 720 >= a and b < 720:
                b += 720  # "晚7:00-9:00": the end inherits the afternoon
            out.append(TimeSpan(a, b, m.group()))
        elif m.group("ch") is not None:
            t = _clock(m, "c")
            if m.group("cend"):
                out.append(TimeSpan(None, t, m.group()))
            else:
                out.append(TimeSpan(t, None, m.group()))
    return out


def fmt(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


_DURATION_RE = re.compile(
    rf"(?P<n>\d+(?:\.\d+)?|{_NUM}|半)\s*(?:个\s*(?P<half>半)?\s*)?(?P<u>分钟|min|mins|小时|h)"
)


def parse_minutes(text: str) -> int | None:
    """'45分钟' → 45, '2小时' → 120, '1.5小时' → 90, '半小时' → 30 (the largest in ``text``)."""
    best = None
    for m in _DURATION_RE.finditer(text):
        n = m.group("n")
        if n == "半":
            v = 0.5
        else:
            try:
                v = float(n)
            except ValueError:
                v = cn_int(n) or 0
        if m.group("half"):
            v += 0.5  # "两个半小时"
        mins = v * 60 if m.group("u") in ("小时", "h") else v
        best = max(best or 0, int(mins))
    return best


def lesson_end(text: str) -> int | None:
    """When ``text`` gives a lesson's start and its length ("19:30开始，每次两个半小时"), its end in
    minutes after midnight; else the latest time it names (:meth:`TimeSpan.latest`)."""
    spans = parse_times(text)
    latest = max((s.latest for s in spans if s.latest is not None), default=None)
    if len(spans) == 1 and spans[0].end is None and spans[0].start is not None:
        length = parse_minutes(text[text.find(spans[0].text) + len(spans[0].text):])
        if length and length <= 240:
            return spans[0].start + length
    return latest
