"""Structured checks a rule can name in its ``check:`` field.

A check looks at the words a pattern matched (and the sentence around them) and either
rejects the candidate (returns ``None``) or accepts it with a sentence for the explanation
(returns ``(delta, note)``; ``delta`` adjusts the score).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from detectors import curriculum, fees, schedule


@dataclass(frozen=True)
class Candidate:
    text: str  # the whole normalised text
    start: int  # matched span in the normalised text
    end: int
    sent_start: int
    sent_end: int
    online: bool  # an online-training word is near

    @property
    def matched(self) -> str:
        return self.text[self.start : self.end]

    @property
    def sentence(self) -> str:
        return self.text[self.sent_start : self.sent_end]


Result = tuple[float, str] | None
CHECKS: dict[str, Callable[[Candidate], Result]] = {}
# GATES[name](words) is a cheap necessary condition of CHECKS[name] that looks at the matched words
# only: the engine runs it on every regex match of a line before evaluating any hit in detail, and
# skips the rule for that line when no match passes
GATES: dict[str, Callable[[str], bool]] = {}
# CHECK_BOOST[name]: the most a check may add to a score (0 unless declared here). The engine caps a
# check's delta at it, and the line gate relies on it: a pattern whose base score plus this stays
# below the threshold needs a score-raising context word in the line
CHECK_BOOST: dict[str, float] = {}


def check(fn: Callable[[Candidate], Result]) -> Callable[[Candidate], Result]:
    CHECKS[fn.__name__] = fn
    return fn


def gate(name: str) -> Callable[[Callable[[str], bool]], Callable[[str], bool]]:
    def deco(fn: Callable[[str], bool]) -> Callable[[str], bool]:
        GATES[name] = fn
        return fn

    return deco


OFFLINE_LIMIT = 20 * 60 + 30  # D11/D10: 线下培训结束时间不得晚于20:30
ONLINE_LIMIT = 21 * 60  # D1 第15条: 线上培训结束时间不晚于21点


_STARTS_AFTER_RE = re.compile(r"\s*(?:以后|之后|往后|后|开始|开课|上课|起)")


@check
def late_class(c: Candidate) -> Result:
    spans = schedule.parse_times(c.matched)
    latest = schedule.lesson_end(c.matched)  # a start and a length ("19:30开始，每次两个半小时") give the end
    if latest is None:
        return None
    # "晚上九点以后的辅导", "21:00开课": a class that begins at the hour ends after it
    begins = (len(spans) == 1 and spans[0].end is None and latest == spans[0].start
              and _STARTS_AFTER_RE.match(c.text, c.end) is not None)
    limit = ONLINE_LIMIT if c.online else OFFLINE_LIMIT
    if latest + begins <= limit:
        return None
    mode = "线上" if c.online else "线下"
    if begins:
        return 0.0, f"{schedule.fmt(latest)} 起上课，结束时间晚于{mode}培训结束时间上限 {schedule.fmt(limit)}"
    return 0.0, f"上课时间至 {schedule.fmt(latest)}，晚于{mode}培训结束时间上限 {schedule.fmt(limit)}"


@check
def long_online_lesson(c: Candidate) -> Result:
    mins = schedule.parse_minutes(c.matched)
    if mins is None or mins <= 30 or mins > 240 or not c.online:
        return None
    sent = c.sentence
    if "线下" in sent and not any(w in sent for w in ("线上", "在线", "直播", "网课")):
        return None  # the sentence itself says the lesson is offline (the online word is elsewhere)
    return 0.0, f"线上每课时 {mins} 分钟，超过 30 分钟的上限"


_DAYS_HOURS_RE = re.compile(
    r"(?P<d>\d{1,3}|[一二两三四五六七八九十]{1,3})\s*(?:天|日)[^\d一二两三四五六七八九十]{0,4}"
    r"(?P<h>\d{1,3}|[一二两三四五六七八九十]{1,3})\s*(?:个)?\s*(?:小时|课时)"
    r"|(?:每天|每日|一天|日均)\s*(?P<x>\d{1,2}(?:\.\d)?|[一二两三四五六七八九十半]{1,3})\s*(?:个)?\s*(?:小时|课时)"
)
INTENSIVE_DAILY_HOURS = 3  # a school day leaves no room for 3+ hours of classes: a holiday crash course


@check
def intensive_hours(c: Candidate) -> Result:
    """'10天60小时', '每天4小时': 3 or more hours of classes a day only fit in a holiday."""
    m = _DAYS_HOURS_RE.search(c.matched)
    if m is None:
        return None
    if m.group("x"):
        x = m.group("x")
        per_day = 0.5 if x == "半" else (float(x) if x[0].isdigit() else float(schedule.cn_int(x) or 0))
        days = None
    else:
        days = schedule.cn_int(m.group("d"))
        hours = schedule.cn_int(m.group("h"))
        if not days or not hours or days > 60:
            return None
        per_day = hours / days
    if per_day < INTENSIVE_DAILY_HOURS or per_day > 14:
        return None
    span = f"{days} 天、" if days else ""
    return 0.0, f"{span}每天 {per_day:g} 小时课程：只能占用假期的突击集训"


@check
def prepaid_period(c: Candidate) -> Result:
    m = fees.months(c.matched)
    if m is None or m <= 3:
        return None
    return 0.0, f"收费时段 {m:g} 个月，超过 3 个月的上限" if m < 999 else "终身会员：收费时段无限期"


@check
def prepaid_period_or_stored_value(c: Candidate) -> Result:
    """'报两年' (a period over 3 months) or a stored-value word (充值, 储值, 办卡: the disguise the rule
    names, whatever the period)."""
    if fees.months(c.matched) is None:
        return 0.0, f"以“{c.matched}”形式预收费用（政策明令禁止以充值、次卡等形式变相收费）"
    return prepaid_period(c)


@check
def prepaid_lessons(c: Candidate) -> Result:
    counted = fees.lessons_counted(c.matched)
    if counted is None:
        return None
    n, with_gift = counted
    over = n > 60 or (n == 60 and re.search(r"以上|起|\+|多", c.matched))
    if not over or n > 5000:
        return None
    if with_gift:
        return 0.0, f"购买与赠送的课时合计 {n:g} 课时，一次超过 60 课时的上限"
    return 0.0, f"一次购买 {n:g} 课时，超过 60 课时的上限"


@check
def prepaid_unit_total(c: Candidate) -> Result:
    pair = fees.unit_total(c.matched)
    if pair is None:
        return None
    price, n = pair
    if n < 2 or n > 5000 or price * n <= 5000:
        return None
    return 0.0, f"每课时 {price:g} 元 × {n:g} 课时 = {price * n:g} 元，一次购买超过 5000 元的上限"


@check
def prepaid_amount(c: Candidate) -> Result:
    vals = fees.amounts(c.matched)
    if not vals:
        return None
    v = max(vals)
    if v < 5000 or (v == 5000 and not re.search(r"以上|起|\+|超过", c.matched)):
        return None
    return 0.0, f"一次性收费 {v:g} 元，超过 5000 元的上限"


_NUM_RE = re.compile(r"\d[\d,]*(?:\.\d+)?")
_PRICE_PAIR_RE = re.compile(r"[¥￥]\s*\d[\d,]*(?:\.\d+)?\s*元?\s*[¥￥]\s*\d[\d,]*(?:\.\d+)?")


@check
def price_drop(c: Candidate) -> Result:
    """'原价430元,现价仅12元': the anchor price must be higher than the selling price."""
    nums = [float(x.replace(",", "")) for x in _NUM_RE.findall(c.matched)]
    nums = [n for n in nums if n >= 5]
    if len(nums) == 1:
        # "…399元…|原价:6000元": a lone struck-through price is still an anchor when the same
        # sentence sells at a lower price elsewhere (before or after it)
        rest = c.text[c.sent_start : c.start] + "|" + c.text[c.end : c.sent_end]
        others = [v for v in fees.amounts(rest) if v >= 5]
        if others:
            nums = nums + [min(others)]
    if len(nums) < 2:
        return None
    hi, lo = nums[0], min(nums[1:])
    if _PRICE_PAIR_RE.fullmatch(c.matched):
        # "¥1899 ¥2399": two bare prices side by side, the struck-through one first or last
        hi, lo = max(nums), min(nums)
    if hi <= lo:
        return None
    return 0.0, f"标示原价 {hi:g} 元，实际售价 {lo:g} 元（为原价的 {lo / hi:.0%}），原价真实性存疑"


_PRICE_BEFORE_RE = re.compile(r"(?<![\d.])(\d{1,5}(?:\.\d{1,2})?)\s*$")
BAIT_PRICE = 100  # 元: a packet of lessons sold below this is a lure, not a price


@check
def small_price(c: Candidate) -> Result:
    """'19元10节课': the price written right before the match (元 …) is a token sum."""
    m = _PRICE_BEFORE_RE.search(c.text, max(0, c.start - 10), c.start)
    if m is None:
        return None
    v = float(m.group(1))
    if v >= BAIT_PRICE:
        return None
    n = fees.lessons(c.matched) or 0
    return 0.0, f"{v:g} 元即可上 {n:g} 节课：远低于正常课价的引流价" if n else f"{v:g} 元的引流价"


@check
def higher_grade(c: Candidate) -> Result:
    """'四年级…学六年级的数学': the grade learnt is above the pupil's own."""
    grades = curriculum.grades(c.matched)
    if len(grades) < 2 or grades[-1] <= grades[0]:
        return None
    return 0.0, f"{grades[0]} 年级学生学习 {grades[-1]} 年级内容，超前 {grades[-1] - grades[0]} 个年级"


@check
def topic_above_grade(c: Candidate) -> Result:
    """'初二就开始学二次函数': the topic is taught in a later grade than the pupil's (by every
    textbook edition: ``detectors.curriculum``)."""
    topic = curriculum.topic_grade(c.matched)
    at = curriculum.pupil_grade(c.matched[: c.matched.find(topic[0])] if topic else "")
    if topic is None or at is None or topic[1] <= at:
        return None
    name = curriculum.grade_name
    return 0.0, f"“{topic[0]}”是{name(topic[1])}的内容，所述学生在{name(at)}：超前 {topic[1] - at} 个年级"


@check
def high_rate(c: Candidate) -> Result:
    m = re.search(r"(\d{2,3}(?:\.\d+)?)\s*%", c.matched)
    if not m:
        return None
    v = float(m.group(1))
    if v < 80 or v > 100:
        return None
    return 0.0, f"宣称比率 {v:g}%"


# -- gates: necessary conditions on the matched words alone ------------------------------------


@gate("late_class")
def _late_gate(words: str) -> bool:
    latest = schedule.lesson_end(words)
    # at the limit itself too: a class that begins then ("20:30以后上课") ends after it (late_class)
    return latest is not None and latest >= min(OFFLINE_LIMIT, ONLINE_LIMIT)


@gate("long_online_lesson")
def _long_gate(words: str) -> bool:
    mins = schedule.parse_minutes(words)
    return mins is not None and 30 < mins <= 240


@gate("prepaid_period")
def _period_gate(words: str) -> bool:
    m = fees.months(words)
    return m is not None and m > 3


@gate("prepaid_lessons")
def _lessons_gate(words: str) -> bool:
    n = fees.lessons(words)
    return n is not None and 60 <= n <= 5000


@gate("prepaid_unit_total")
def _unit_total_gate(words: str) -> bool:
    pair = fees.unit_total(words)
    return pair is not None and pair[0] * pair[1] > 5000


@gate("prepaid_amount")
def _amount_gate(words: str) -> bool:
    return any(v >= 5000 for v in fees.amounts(words))


@gate("intensive_hours")
def _intensive_gate(words: str) -> bool:
    return _DAYS_HOURS_RE.search(words) is not None


@gate("high_rate")
def _rate_gate(words: str) -> bool:
    return high_rate(Candidate(words, 0, len(words), 0, len(words), False)) is not None
