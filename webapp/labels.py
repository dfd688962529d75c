"""Chinese names of the store's codes (the same words as the evidence report)."""

from __future__ import annotations

import re
from collections.abc import Callable

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


# The detectors explain themselves in English sentences of a few fixed shapes (detectors/engine.py,
# detectors/checks.py); investigators read Chinese. Each shape → its Chinese sentence; the legal
# basis ("breaks …") is shown in its own column, and a shape not listed here is left out rather than
# shown in English.
_W = "“([^”]*)”"
_EXPLAIN_ZH: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (re.compile(r"^rule ([\w.]+): (.*)$"), lambda m: f"命中规则：{m[2]}（{m[1]}）"),
    (re.compile(r"^(?:\w+ )?pattern “(.*)” matched “(.*)” \(base score ([\d.]+)\)$"),
     lambda m: f"命中用语“{m[2]}”（基础分 {m[3]}）"),
    (re.compile(rf"^context {_W}(?: \(([^)]*)\))? in the (\w+) raised the score by ([\d.]+)$"),
     lambda m: f"同{_SCOPE.get(m[3], '句')}出现“{m[1]}”{'（' + m[2] + '）' if m[2] else ''}，分值 +{m[4]}"),
    (re.compile(rf"^context {_W}(?: \(([^)]*)\))? in the (\w+) lowered the score by ([\d.]+)$"),
     lambda m: f"同{_SCOPE.get(m[3], '句')}出现“{m[1]}”{'（' + m[2] + '）' if m[2] else ''}，分值 −{m[4]}"),
    (re.compile(rf"^also matched by rule ([\w.]+) on {_W}$"), lambda m: f"规则 {m[1]} 也命中“{m[2]}”（合并为一项）"),
    (re.compile(r"^score ([\d.]+) ≥ threshold ([\d.]+)$"), lambda m: f"综合得分 {m[1]}，达到判定阈值 {m[2]}"),
    (re.compile(rf"^(?:negation|prohibition|negated verb|collective prohibition|[\w ]+ word) {_W}.*lowered by ([\d.]+)$"),
     lambda m: f"附近有否定或限定用语“{m[1]}”，分值 −{m[2]}"),
    (re.compile(r"^check \w+: class time (\S+) is after the (\S+) limit (\S+)$"),
     lambda m: f"上课时间 {m[1]} 晚于{m[2]}培训结束时限 {m[3]}"),
    (re.compile(r"^check \w+: an online lesson of (\d+) minutes is longer than the 30-minute limit$"),
     lambda m: f"线上课程每课时 {m[1]} 分钟，超过 30 分钟上限"),
    (re.compile(r"^check \w+: fees for (\S+) months exceed the 3-month limit$"),
     lambda m: f"一次收取 {m[1]} 个月费用，超过 3 个月上限"),
    (re.compile(r"^check \w+: (?:(\d+) days, )?(\S+) hours of classes a day: a crash course that only fits in a holiday$"),
     lambda m: (f"{m[1]} 天、" if m[1] else "") + f"每天上课 {m[2]} 小时，属于只能在假期进行的集中培训"),
    (re.compile(r"^check \w+: a claimed rate of (\S+)%$"), lambda m: f"宣称比率 {m[1]}%，涉嫌夸大或虚假宣传"),
    (re.compile(r"^check \w+: lifetime membership$"), lambda m: "终身会员制收费，超过 3 个月上限"),
    (re.compile(r"^check \w+: a package of (\S+) lessons exceeds the 60-lesson limit$"),
     lambda m: f"一次收取 {m[1]} 课时费用，超过 60 课时上限"),
    (re.compile(r"^check \w+: a one-off payment of (\S+) 元 exceeds the 5000-元 limit$"),
     lambda m: f"一次性收费 {m[1]} 元，超过 5000 元上限"),
    (re.compile(r"^check \w+: a struck-through price (\S+) beside a selling price (\S+) \((\S+) of it\)$"),
     lambda m: f"划线原价 {m[1]} 元与售价 {m[2]} 元并列（售价为原价的 {m[3]}），涉嫌虚假价格宣传"),
]
_SCOPE = {"sentence": "句", "clause": "分句", "line": "行", "text": "文"}


def explain_zh(explanation: list[str] | None) -> list[str]:
    """The detector's reasons in Chinese: a Chinese step as written, an English one translated."""
    from evidence.report import explanation_zh as chinese_steps

    out = []
    for line in explanation or []:
        for rx, make in _EXPLAIN_ZH:
            if m := rx.match(line):
                out.append(make(m))
                break
        else:
            out += chinese_steps([line])
    return out


_SEARCH_ERRORS = [
    (re.compile(r"^query too long"), "搜索词太长（最多 500 个字）"),
    (re.compile(r"^unbalanced quote"), "引号不成对"),
    (re.compile(r"^empty phrase"), "引号中没有内容"),
    (re.compile(r"^'-' must be followed"), "减号后面需要紧跟要排除的词"),
    (re.compile(r"^OR needs a word"), "OR 两边都需要有词"),
    (re.compile(r"^OR cannot join"), "OR 不能连接排除词（-）"),
    (re.compile(r"has no letters or digits"), "搜索词中没有可搜索的文字或数字"),
    (re.compile(r"^too many words"), "搜索词过多（最多 32 个）"),
    (re.compile(r"^a query of only excluded"), "只有排除词（-）的搜索会匹配全部内容，请加上要搜索的词"),
]


def search_error(e: Exception) -> str:
    """A search failure in one Chinese line (the search package words its errors in English)."""
    from search.base import BackendUnavailable

    if isinstance(e, BackendUnavailable):
        return "搜索服务暂时无法连接，请稍后再试或联系管理员。"
    msg = str(e)
    for rx, zh in _SEARCH_ERRORS:
        if rx.search(msg):
            return f"搜索条件有误：{zh}。"
    return "搜索无法执行，请检查搜索词后重试；如仍失败请联系管理员。"
