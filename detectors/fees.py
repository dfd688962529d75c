"""Periods, lesson counts and amounts, for the ``prepaid_fees`` and price rules.

D9/D10: no collecting, in one go or via 充值/次卡, fees that span more than 3 months or 60
lessons, nor more than 5000 元. These helpers turn the words of an advert into numbers.
"""

from __future__ import annotations

import re

from detectors.schedule import cn_int

_CN_NUM = "零〇一二两三四五六七八九十百千万"


def cn_number(s: str) -> float | None:
    """'5000' → 5000, '1.2万' → 12000, '五千' → 5000, '一万二' → 12000, '11,998' → 11998."""
    s = s.replace(",", "").replace(" ", "").strip()
    if not s:
        return None
    mult = 1.0
    if s.endswith("万") and re.fullmatch(r"\d+(?:\.\d+)?万", s):
        return float(s[:-1]) * 10000
    if s.endswith("千") and re.fullmatch(r"\d+(?:\.\d+)?千", s):
        return float(s[:-1]) * 1000
    try:
        return float(s) * mult
    except ValueError:
        pass
    if not all(c in _CN_NUM for c in s):
        return None
    total = 0
    section = 0
    num = 0
    units = {"十": 10, "百": 100, "千": 1000}
    last_unit = 1
    for c in s:
        if c in units:
            section += (num or 1) * units[c]
            last_unit = units[c]
            num = 0
        elif c == "万":
            total += (section + num) * 10000
            section = 0
            num = 0
            last_unit = 10000
        else:
            v = cn_int(c)
            if v is None:
                return None
            num = v
    if num and len(s) >= 2 and s[-2] in "十百千万" and last_unit >= 100:
        num *= last_unit // 10  # "一万二" → 12000, "三千五" → 3500
    return float(total + section + num)


NUMBER = rf"(?:\d[\d,]*(?:\.\d+)?[万千]?|[{_CN_NUM}]+)"
# 年 before 级 is a school year ("3年级", "三年级起"), not a span of time
_MONTHS_RE = re.compile(
    rf"(?P<n>{NUMBER})\s*(?:个)?\s*(?P<u>月|年(?!级)|学年|学期|季度|天|周|星期)|(?P<w>全年|一年|半年|两年|三年|终身|年卡|年缴|年费|"
    rf"学年|一整年|整年|包年|全学年)(?!级)"
)


# a span of calendar months: "9月—次年1月" (September to January: 5 months; a dash between two Chinese
# characters is read as an evasion and dropped, so "9月次年1月" too)
_MONTH_RANGE_RE = re.compile(
    r"(?<!\d)(?P<a>1[0-2]|0?[1-9])\s*月(?:\s*\d{1,2}\s*[日号])?\s*(?:(?:-|—|–|~|～|至|到)\s*(?:次年|来年|明年|翌年)?|次年|来年|明年|翌年)\s*"
    r"(?P<b>1[0-2]|0?[1-9])\s*月"
)


_CALENDAR_MONTH_AFTER_RE = re.compile(r"\s*(?:\d{1,2}\s*[日号]|份|初|中旬|上旬|下旬|底|末)")


def months(text: str) -> float | None:
    """The longest period named in ``text``, in months ('12个月' → 12, '全年' → 12, '9月—次年1月' → 5)."""
    best = None
    ranges = []
    for m in _MONTH_RANGE_RE.finditer(text):
        v = (int(m.group("b")) - int(m.group("a"))) % 12 + 1
        best = v if best is None else max(best, v)
        ranges.append(m.span())
    for m in _MONTHS_RE.finditer(text):
        if m.group("u") == "月" and (any(a <= m.start() < b for a, b in ranges)
                                     or _CALENDAR_MONTH_AFTER_RE.match(text, m.end())):
            continue  # "9月—次年1月", "7月10日", "8月份": a month of the calendar, not a number of months
        if m.group("w"):
            w = m.group("w")
            v = {"半年": 6, "两年": 24, "三年": 36, "终身": 999}.get(w, 12)
        else:
            n = cn_number(m.group("n"))
            if n is None:
                continue
            u = m.group("u")
            v = n * {"月": 1, "年": 12, "学年": 12, "学期": 5, "季度": 3, "天": 1 / 30, "周": 7 / 30, "星期": 7 / 30}[u]
        best = v if best is None else max(best, v)
    return best


_LESSONS_RE = re.compile(rf"(?P<n>{NUMBER})\s*(?:多|余)?\s*(?:个)?\s*(?:课时|节课|节|次课|堂课|讲|课次)")  # "200多课时": at least 200


_GIFT_RE = re.compile(r"赠|送")  # lessons given with the ones bought
_TOTAL_BEFORE_RE = re.compile(r"(?:共|合计|总计|累计)\s*$")  # the total stated before a count


def lessons(text: str) -> float | None:
    """The largest number of lessons named in ``text``; lessons given with the ones bought count with
    them ("40课时……赠送20课时及20课时" → 80: one purchase), unless the text states the total itself
    ("买30节送10节，共40节" → 40)."""
    counted = lessons_counted(text)
    return None if counted is None else counted[0]


def lessons_counted(text: str) -> tuple[float, bool] | None:
    """(``lessons(text)``, whether it adds lessons given to lessons bought)."""
    found = [(m, n) for m in _LESSONS_RE.finditer(text) if (n := cn_number(m.group("n"))) is not None]
    if not found:
        return None
    totals = [n for m, n in found if _TOTAL_BEFORE_RE.search(text, max(0, m.start() - 3), m.start())]
    if totals:
        return max(totals), False
    counts = [n for _, n in found]
    if len(counts) > 1 and _GIFT_RE.search(text):
        return float(sum(counts)), True
    return max(counts), False


# a price per lesson and how many lessons are sold at that price: "288元/次课,限购20次", "40课时起报，每课时150元"
# (a "/" between characters is read as an evasion and dropped: "288元/次课" may arrive as "288元次课")
_UNIT = r"(?:次课|节课|堂课|课时|课次|次|节|堂|讲)"
_UNIT_PRICE_RE = re.compile(rf"(?P<p>{NUMBER})\s*元\s*(?:/|每|一)?\s*{_UNIT}|(?:每|一)\s*{_UNIT}\s*(?P<q>{NUMBER})\s*元")
_COUNT_RE = re.compile(rf"(?P<n>{NUMBER})\s*(?:个)?\s*{_UNIT}")


def unit_total(text: str) -> tuple[float, float] | None:
    """(price per lesson, lessons) when ``text`` names both, the count outside the price ("288元/次课" is
    a price, not one lesson)."""
    price = _UNIT_PRICE_RE.search(text)
    if price is None:
        return None
    p = cn_number(price.group("p") or price.group("q"))
    counts = [n for m in _COUNT_RE.finditer(text)
              if not (price.start() <= m.start() < price.end()) and (n := cn_number(m.group("n"))) is not None]
    if p is None or not counts:
        return None
    return p, max(counts)


_AMOUNT_RE = re.compile(
    rf"(?:[¥￥$]\s*(?P<a>{NUMBER})\s*(?:元|块)?|(?P<b>{NUMBER})\s*(?:元|块钱|rmb))"
)


def amounts(text: str) -> list[float]:
    out = []
    for m in _AMOUNT_RE.finditer(text):
        n = cn_number(m.group("a") or m.group("b"))
        if n is not None:
            out.append(n)
    return out


PRICE = rf"(?:[¥￥$]\s*{NUMBER}\s*(?:元|块)?|{NUMBER}\s*(?:元|块钱))"
