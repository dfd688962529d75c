"""Pure cross-checks: a site's evidence (pages, detector findings, QR targets) and the ledger's
records in, the site's institution and the findings that contradict the ledger out. No I/O: the
caller (``ledger.scan``) looks the candidates up in the store.

Linking a site to its institution, strongest first: the seed's institution name, the site's
domain among the ledger's web sites, a credit code or licence number printed on its pages, a QR
target (a ledger web site or WeChat account). The checks:

- ``ledger.subject_without_approval``: subject-training ads (the detectors' subject categories)
  from a 非学科类 institution, a 学科类 one not yet approved, or one the ledger does not know;
- ``ledger.barred_still_advertising``: a black-listed, revoked or cancelled institution's site still
  advertising (enrolment words or any detector finding);
- ``ledger.identifier_mismatch``: a credit code or licence number on the site that is not the
  ledger's (said when it is another institution's, or not a valid code at all);
- ``ledger.unregistered_name``: the institution named by the site matches no ledger entry
  (for the investigator: unregistered?).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from detectors.model import Finding
from evidence.report import CATEGORY_ZH
from ledger.codes import Printed, licence_key
from ledger.records import BARRED, Institution, host_key, name_key

CHECKS_FILE = Path(__file__).with_name("checks.yaml")
# detector categories that mean "subject training is offered here" (rules.md §1, §4, §5, §10)
SUBJECT_CATEGORIES = ("preschool_subject", "advance_teaching", "off_hours_schedule", "unlicensed_subject",
                      "competition_ranking")
AD_WORDS = ("招生", "报名", "试听", "开班", "开课", "招募", "优惠", "咨询热线", "课程", "预约")
SEVERITY_RANK = {"high": 3, "medium": 2, "low": 1}
LINK_LABELS = {"seed": "扫描目标所填机构名称", "domain": "网站域名", "credit_code": "网页公示的统一社会信用代码",
               "licence": "网页公示的办学许可证号", "qr": "广告二维码指向的网站或公众号"}


@dataclass(frozen=True)
class Check:
    id: str
    category: str
    severity: str
    title: str
    basis: str


@cache
def checks() -> dict[str, Check]:
    data = yaml.safe_load(CHECKS_FILE.read_text(encoding="utf-8"))["checks"]
    out = {}
    for cid, c in data.items():
        b = c["basis"]
        out[cid] = Check(cid, c["category"], c["severity"], c["title"],
                         f"{b['document']} {b['article']}：“{b['text']}”")
    return out


@dataclass(frozen=True)
class Page:
    url: str
    text: str


@dataclass
class SiteEvidence:
    """What one scan saw of one site (all seeds of one institution name)."""

    site: str                                   # the seed's institution name, or its host when unnamed
    named: bool                                 # the seed gave a name (机构名=URL)
    pages: list[Page]
    findings: list[dict[str, Any]]              # detector findings sighted in the scan (store rows)
    printed: list[tuple[str, Printed]] = field(default_factory=list)   # (page url, identifier)
    qr_targets: list[str] = field(default_factory=list)

    @property
    def hosts(self) -> list[str]:
        return sorted({host_key(p.url) for p in self.pages})


@dataclass(frozen=True)
class Link:
    institution: Institution | None
    how: str | None = None                      # seed | domain | credit_code | licence | qr
    detail: str = ""

    @property
    def description(self) -> str:
        if self.institution is None:
            return "未在台账中找到对应机构"
        return f"依据{LINK_LABELS.get(self.how or '', self.how)}（{self.detail}）关联到台账机构“{self.institution.name}”"


@dataclass(frozen=True)
class Anchor:
    """Where on the site a cross-check finding points: a span of a page text or of an ad image's
    OCR text (as the detector finding it reuses)."""

    url: str
    source: str                                 # text | image
    text: str                                   # the text the span is in
    start: int
    end: int
    image_url: str | None = None
    image_sha256: str | None = None
    boxes: Any = None


@dataclass(frozen=True)
class CrossFinding:
    finding: Finding
    anchor: Anchor


def link_site(ev: SiteEvidence, candidates: dict[str, list[Institution]]) -> Link:
    """Pick the site's institution from the ledger candidates found by each means (``candidates[how]``,
    as looked up by the caller: ``seed`` by name, ``domain`` by host, ``credit_code`` / ``licence``
    by what the pages print, ``qr`` by QR targets). One candidate by the strongest means wins; two
    by the same means are told apart by the weaker means (e.g. same name, one has this domain)."""
    order = ("seed", "domain", "credit_code", "licence", "qr")
    for i, how in enumerate(order):
        found = candidates.get(how) or []
        if not found:
            continue
        if len(found) > 1:
            weaker = {inst.credit_code for h in order[i + 1:] for inst in candidates.get(h) or []}
            narrowed = [inst for inst in found if inst.credit_code in weaker]
            found = narrowed or found
        inst = found[0]
        return Link(inst, how, _link_detail(how, inst, ev))
    return Link(None)


def _link_detail(how: str, inst: Institution, ev: SiteEvidence) -> str:
    if how == "seed":
        return ev.site
    if how == "domain":
        own = {host_key(u) for u in inst.sites}
        return "、".join(h for h in ev.hosts if h in own) or "、".join(ev.hosts)
    if how == "credit_code":
        return inst.credit_code
    if how == "licence":
        return inst.licence_no or ""
    return "、".join(ev.qr_targets[:3])


def cross_check(ev: SiteEvidence, link: Link, owners: dict[tuple[str, str], Institution],
                similar: list[Institution] | None = None) -> list[CrossFinding]:
    """The cross-check findings for one site. ``owners`` maps a printed identifier
    (``("credit_code", code)`` or ``("licence", licence_key)``) to the ledger institution it
    belongs to, when there is one; ``similar`` are ledger entries whose names resemble the site's
    (named in the explanation of an unregistered site, never linked)."""
    out: list[CrossFinding] = []
    inst = link.institution
    subject = _subject_findings(ev.findings)
    barred = inst is not None and inst.status in BARRED
    if subject and not barred and (inst is None or inst.type != "subject" or inst.status != "approved"):
        out.append(_subject_without_approval(ev, link, subject))
    if barred:
        anchor_f = _strongest(ev.findings)
        ad = _anchor_of(anchor_f) if anchor_f else _ad_words_anchor(ev.pages)
        if ad is not None:
            out.append(_barred(ev, link, ad, anchor_f, len(ev.findings)))
    if inst is not None:
        out += _mismatches(ev, link, owners)
    else:
        named = _name_anchor(ev)
        if named is not None:
            out.append(_unregistered(ev, named, similar or []))
    return out


# -- the checks ----------------------------------------------------------------------------------
def _finding(check_id: str, anchor: Anchor, explanation: list[str], score: float = 1.0) -> CrossFinding:
    c = checks()[check_id]
    f = Finding(c.category, c.id, anchor.text[anchor.start:anchor.end], anchor.start, anchor.end, score,
                c.severity, c.basis, tuple(explanation))
    return CrossFinding(f, anchor)


def ledger_line(inst: Institution) -> str:
    licence = f"，办学许可证号 {inst.licence_no}" if inst.licence_no else "，台账无办学许可证号"
    district = f"，{inst.district}" if inst.district else ""
    return (f"台账记录：“{inst.name}”（统一社会信用代码 {inst.credit_code}{licence}），类型 {inst.type_label}，"
            f"状态 {inst.status_label}{district}。")


def _subject_without_approval(ev: SiteEvidence, link: Link, subject: list[dict[str, Any]]) -> CrossFinding:
    inst = link.institution
    top = subject[0]
    if inst is None:
        why = f"网站所示机构“{ev.site}”在台账中查无记录（未登记？），却在宣传学科类培训。"
    elif inst.type != "subject":
        why = f"该机构在台账中为{inst.type_label}，不得开展学科类培训，网站却在宣传学科类培训。"
    else:
        why = f"该学科类机构在台账中的状态为“{inst.status_label}”，未纳入白名单，不得开展学科类培训。"
    examples = "；".join(dict.fromkeys(f"“{f['text']}”" for f in subject))
    lines = [why, f"网站上的学科类培训宣传共{len(subject)}处，例如：{_cut(examples, 120)}。"]
    if inst is not None:
        lines += [ledger_line(inst), link.description + "。"]
    return _finding("ledger.subject_without_approval", _anchor_of(top), lines, top.get("score") or 1.0)


def _barred(ev: SiteEvidence, link: Link, anchor: Anchor, top: dict[str, Any] | None, n: int) -> CrossFinding:
    inst = link.institution
    assert inst is not None
    lines = [f"该机构在台账中的状态为“{inst.status_label}”，已不得开展校外培训，网站仍在招生宣传。"]
    if top is not None:
        label = CATEGORY_ZH.get(top["category"], top["category"])
        lines.append(f"本次扫描在该网站发现{n}处违规宣传，例如“{_cut(top['text'], 40)}”（{label}）。")
    lines += [ledger_line(inst), link.description + "。"]
    return _finding("ledger.barred_still_advertising", anchor, lines)


def _mismatches(ev: SiteEvidence, link: Link, owners: dict[tuple[str, str], Institution]) -> list[CrossFinding]:
    inst = link.institution
    assert inst is not None
    out: list[CrossFinding] = []
    seen: set[tuple[str, str]] = set()
    texts = {p.url: p.text for p in ev.pages}
    # linked only through a number it prints, under another name: the number may be borrowed
    borrowed = link.how in ("credit_code", "licence") and ev.named and name_key(ev.site) != name_key(inst.name)
    for url, p in ev.printed:
        key = (p.kind, p.value if p.kind == "credit_code" else licence_key(p.value))
        if key in seen or url not in texts:
            continue
        seen.add(key)
        if borrowed and owners.get(key) == inst:
            what = "统一社会信用代码" if p.kind == "credit_code" else "办学许可证号"
            lines = [f"网站所示机构“{ev.site}”公示的{what}“{p.value}”在台账中属于另一机构“{inst.name}”，"
                     "疑似冒用他人资质。", ledger_line(inst),
                     f"台账中没有名为“{ev.site}”的机构；该网站仅凭所公示的{what}关联到上述机构。"]
            out.append(_finding("ledger.identifier_mismatch", Anchor(url, "text", texts[url], p.start, p.end), lines))
            continue
        if p.kind == "credit_code":
            if p.value == inst.credit_code:
                continue
            what, ours = "统一社会信用代码", inst.credit_code
        else:
            if inst.licence_no and key[1] == licence_key(inst.licence_no):
                continue
            what, ours = "办学许可证号", inst.licence_no or "（台账无办学许可证号）"
        lines = [f"网站公示的{what}“{p.value}”与台账记录（{ours}）不符。"]
        other = owners.get(key)
        if p.kind == "credit_code" and not p.valid:
            lines.append("该代码不符合国家标准（GB 32100-2015）的校验规则，不是有效的统一社会信用代码。")
        elif other is not None and other.credit_code != inst.credit_code:
            lines.append(f"该{what}属于台账中的另一机构“{other.name}”（{other.credit_code}，{other.type_label}，"
                         f"{other.status_label}），疑似冒用他人资质。")
        else:
            lines.append(f"台账中没有任何机构使用该{what}。")
        lines += [ledger_line(inst), link.description + "。"]
        out.append(_finding("ledger.identifier_mismatch", Anchor(url, "text", texts[url], p.start, p.end), lines))
    return out


def _unregistered(ev: SiteEvidence, anchor: Anchor, similar: list[Institution]) -> CrossFinding:
    name = anchor.text[anchor.start:anchor.end]
    lines = [f"网站所示机构“{name}”在台账中查无同名机构，其网站、公示的代码和二维码也未对应任何台账机构"
             "（未登记？请核实是否为无证办学）。",
             f"扫描网站：{'、'.join(ev.hosts)}。"]
    if similar:
        lines.append("台账中名称相近的机构（未自动关联，请人工核对）：" + "；".join(
            f"“{i.name}”（{i.credit_code}，{i.status_label}）" for i in similar[:3]) + "。")
    return _finding("ledger.unregistered_name", anchor, lines, 0.5)


# -- helpers -------------------------------------------------------------------------------------
def _rank(f: dict[str, Any]) -> tuple:
    return (-SEVERITY_RANK.get(f.get("severity") or "", 0), -(f.get("score") or 0), f["url"], f["source"],
            f.get("image_url") or "", f["start"], f["rule_id"])


def _subject_findings(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted((f for f in findings if f["category"] in SUBJECT_CATEGORIES
                   and not str(f["rule_id"]).startswith("ledger.")), key=_rank)


def _strongest(findings: list[dict[str, Any]]) -> dict[str, Any] | None:
    own = [f for f in findings if not str(f["rule_id"]).startswith("ledger.")]
    return min(own, key=_rank) if own else None


def _anchor_of(f: dict[str, Any]) -> Anchor:
    """A detector finding's place, with the context it was stored with as the text around it."""
    context = f.get("context") or f["text"]
    at = context.find(f["text"])
    if at < 0:
        context, at = f["text"], 0
    return Anchor(f["url"], f["source"], context, at, at + len(f["text"]), f.get("image_url"),
                  f.get("image_sha256"), f.get("boxes"))


def _ad_words_anchor(pages: list[Page]) -> Anchor | None:
    for page in sorted(pages, key=lambda p: (urlsplit(p.url).path not in ("", "/", "/index.html"), p.url)):
        m = re.search("|".join(AD_WORDS), page.text)
        if m:
            return Anchor(page.url, "text", page.text, m.start(), m.end())
    return None


def _name_anchor(ev: SiteEvidence) -> Anchor | None:
    """The institution's name where the site shows it (the seed's name), else the home page title."""
    pages = sorted(ev.pages, key=lambda p: (urlsplit(p.url).path not in ("", "/", "/index.html"), p.url))
    if ev.named:
        for page in pages:
            at = page.text.find(ev.site)
            if at >= 0:
                return Anchor(page.url, "text", page.text, at, at + len(ev.site))
    for page in pages:
        title = page.text.split("\n", 1)[0].strip()
        if title:
            at = page.text.find(title)
            return Anchor(page.url, "text", page.text, at, at + len(title))
    return None


def _cut(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"
