"""Where a topic sits in the school curriculum, and where a pupil is: the data behind the
advance-teaching check "a pupil of grade N is taught a topic of a later grade".

The topics and their grades are data (``rules/_curriculum.yaml``, the lists ``topics_grade_N``);
this module only reads them and the grade words of a text. Pure functions, no I/O after the first
call (the file is read once).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from detectors.schedule import cn_int

CURRICULUM = Path(__file__).resolve().parent / "rules" / "_curriculum.yaml"
_TOPICS_LIST = re.compile(r"topics_grade_(\d+)$")
# the grade a stage word puts a pupil in now (the summer before a stage: the grade before it)
_STAGES = {"小学生": 6, "小学阶段": 6, "小学": 6, "初中生": 9, "初中阶段": 9, "小升初": 6, "新初一": 6, "准初一": 6,
           "升初一": 6, "初升高": 9, "新高一": 9, "准高一": 9, "升高一": 9, "幼儿园": 0, "大班": 0, "学龄前": 0}
_GRADE = r"([一二三四五六七八九1-9])年级|([初高])([一二三])"
_GRADE_RE = re.compile(_GRADE)
_GRADE_OR_STAGE_RE = re.compile(_GRADE + "|" + "|".join(sorted(_STAGES, key=len, reverse=True)))


@cache
def topic_grades() -> dict[str, int]:
    """topic (folded as the rules see it) → the grade that first teaches it."""
    from detectors.engine import load_lexicon  # the rule packs' own loader (the engine imports this module)

    out: dict[str, int] = {}
    for name, words in load_lexicon(CURRICULUM).vocab.items():
        m = _TOPICS_LIST.match(name)
        if m:
            out.update(dict.fromkeys(words, int(m.group(1))))
    return out


def topic_grade(words: str) -> tuple[str, int] | None:
    """The latest-taught topic named in ``words`` and its grade."""
    grades = topic_grades()
    best: tuple[str, int] | None = None
    for topic, grade in grades.items():
        if topic in words and (best is None or grade > best[1] or (grade == best[1] and len(topic) > len(best[0]))):
            best = (topic, grade)
    return best


def grades(words: str, *, stages: bool = False) -> list[int]:
    """The school grades named in ``words``, in order: 四年级 → 4, 初二 → 8, 高一 → 10; with ``stages``
    also the stage words (小升初 → 6, 大班 → 0)."""
    out = []
    for m in (_GRADE_OR_STAGE_RE if stages else _GRADE_RE).finditer(words):
        if m.group(1):
            out.append(cn_int(m.group(1)))
        elif m.group(2):
            n = cn_int(m.group(3))
            out.append(None if n is None else n + (6 if m.group(2) == "初" else 9))
        else:
            out.append(_STAGES[m.group()])
    return [g for g in out if g is not None]


def pupil_grade(words: str) -> int | None:
    """The highest grade a pupil is said to be in (初二 → 8, 小升初 → 6, 大班 → 0), None if none."""
    found = grades(words, stages=True)
    return max(found) if found else None


_CN = "一二三四五六"


def grade_name(grade: int) -> str:
    """0 → 学龄前, 3 → 三年级, 8 → 初二, 11 → 高二 (as reports write them)."""
    if grade <= 0:
        return "学龄前"
    if grade <= 6:
        return f"{_CN[grade - 1]}年级"
    if grade <= 9:
        return f"初{_CN[grade - 7]}"
    return f"高{_CN[min(grade, 12) - 10]}"
