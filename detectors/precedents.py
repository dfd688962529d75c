"""Precedents: real cases the detectors compare a text with, and the `suspected` (疑似) tier.

The library ships in the package (``detectors/precedents/*.jsonl``, built by
``bench/build_precedents.py`` from the tuning part of the real corpora only): each case is a real
text, what was decided about it (a violation, with its categories, or a compliant text kept as a
counter-example), its source and, when the source names one, the authority that decided. A store
adds the findings its investigators reviewed (``jianfu review … --status confirmed|dismissed``):
a confirmed finding's words become a violation precedent, a dismissed one's a counter-example.

The matcher is TF-IDF over character 2- and 3-grams of folded text (simplified, half-width, lower
case, every number as ``0``), compared by cosine similarity. With it:

* every rule finding cites its closest violation precedent of the same category (“与……查处的案例
  相似”);
* a sentence on which no rule fired but which is close to a violation precedent of at least
  ``MIN_CASE_CHARS`` letters (similarity ≥ ``SUSPECT_AT``) and closer to it than to every
  counter-example (by ``MARGIN``) becomes a finding of tier ``suspected``, with the precedent as
  its explanation: an investigator checks it, and confirming or dismissing it teaches the matcher.

Pure: texts and precedents in, findings out (the library file is read once, at construction).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from detectors.model import Finding
from detectors.normalize import char_fold

LIBRARY_DIR = Path(__file__).with_name("precedents")
NGRAMS = (2, 3)
SUSPECT_AT = 0.2  # similarity to a violation precedent from which a sentence is suspected
MARGIN = 0.05  # ... if no counter-example is within this of it
CITE_AT = 0.15  # below this a rule finding cites a case of its kind ("同类：…") rather than a similar one
MIN_CHARS = 6  # a sentence with fewer letters is not compared (menus, labels)
MIN_CASE_CHARS = 8  # a shorter precedent ("一对一辅导") is a keyword, the rules' job: it makes no suspect
MAX_WINDOW = 60  # a longer sentence is also compared clause by clause
CHUNK_CHARS = 1 << 20  # candidate_windows works on at most this many characters at once
SUSPECTED = "suspected"

CATEGORY_NAMES = {
    "preschool_subject": "学前学科类培训",
    "photo_search": "拍照搜题",
    "competition_ranking": "竞赛与排名炒作",
    "advance_teaching": "超前超标培训",
    "off_hours_schedule": "违规时段培训",
    "prepaid_fees": "违规预收费",
    "teacher_qualification": "师资资质宣传",
    "guarantee_promise": "效果保证承诺",
    "false_claim": "虚假宣传",
    "unlicensed_subject": "违规学科类培训",
}

_SENTENCE_END = re.compile(r"[。！？!?；;\n]")
_NOT_WORD = re.compile(r"[^0-9a-z\u3400-\u4dbf\u4e00-\u9fff]+")
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class Precedent:
    """One case: ``verdict`` is ``violation`` (``categories``: the first is the main one) or
    ``compliant`` (a counter-example). ``origin``: ``library``, ``confirmed`` or ``dismissed``."""

    id: str
    text: str
    verdict: str
    categories: tuple[str, ...] = ()
    source_url: str = ""
    source_title: str = ""
    authority: str = ""
    decision: str = ""
    origin: str = "library"

    @property
    def violation(self) -> bool:
        return self.verdict == "violation"

    def citation(self, similarity: float | None = None) -> str:
        """One sentence in Chinese naming the case, who decided it and where it was published;
        with ``similarity``, how close the text cited for is (else it is cited as a case of the
        same kind)."""
        if self.origin == "confirmed":
            who, src = "调查人员已确认的违规发现", f"（{self.source_title}）" if self.source_title else ""
        else:
            who = f"{self.authority}查处的案例" if self.authority else "公开报道的违规案例"
            src = f"（来源：{self.source_title}）" if self.source_title else ""
        head = f"与{who}相似{src}，相似度 {similarity:.2f}" if similarity is not None else f"同类：{who}{src}"
        decision = self.decision if _chinese(self.decision) else ""
        decided = f"；处理情况：{_clip(decision, 120)}" if decision else ""
        return f"{head}：“{_clip(self.text, 80)}”{decided}"


def _chinese(text: str) -> bool:
    """Whether ``text`` is written in Chinese (some sources' notes are in English)."""
    cjk = sum(1 for c in text if "\u4e00" <= c <= "\u9fff")
    latin = sum(1 for c in text if c.isascii() and c.isalpha())
    return cjk > 0 and cjk >= latin / 3


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def matching_key(text: str) -> str:
    """What the matcher compares: folded, numbers as 0, only letters, digits and CJK."""
    return _key(char_fold(text))


def _key(folded: str) -> str:
    return _NOT_WORD.sub("", _DIGITS.sub("0", folded))


def _grams(key: str) -> Counter[str]:
    return Counter(key[i : i + n] for n in NGRAMS for i in range(len(key) - n + 1))


def _gram_code(gram: str) -> int:
    """A gram as one integer (21 bits per character), as ``candidate_windows`` computes them."""
    code = 0
    for ch in gram:
        code = (code << 21) | ord(ch)
    return code


def load_library(directory: Path = LIBRARY_DIR) -> list[Precedent]:
    """The cases shipped in the package."""
    out = []
    for path in sorted(directory.glob("*.jsonl")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    d = json.loads(line)
                    out.append(Precedent(
                        id=d["id"], text=d["text"], verdict=d["verdict"], categories=tuple(d.get("categories") or ()),
                        source_url=d.get("source_url", ""), source_title=d.get("source_title", ""),
                        authority=d.get("authority", ""), decision=d.get("decision", ""),
                    ))
    return out


def reviewed_precedents(rows: Iterable[dict[str, Any]]) -> list[Precedent]:
    """Precedents from reviewed findings (rows of ``Store.reviewed_findings``: id, status,
    category, text, context, url, institution): confirmed → violation, dismissed → counter-example.
    The words compared are the finding's line in its context, so the matcher learns the phrase
    and not just the matched keyword."""
    out = []
    for r in rows:
        status = r.get("status")
        if status not in ("confirmed", "dismissed"):
            continue
        text = _line_around(r.get("context") or "", r.get("text") or "") or r.get("text") or ""
        if not text.strip():
            continue
        who = r.get("institution") or ""
        out.append(Precedent(
            id=f"{status}:{r['id']}", text=text, verdict="violation" if status == "confirmed" else "compliant",
            categories=(r["category"],) if status == "confirmed" and r.get("category") else (),
            source_url=r.get("url") or "", source_title=f"{who} {r.get('url') or ''}".strip(),
            decision="调查人员已确认违规" if status == "confirmed" else "调查人员已排除（误报）", origin=status,
        ))
    return out


def _line_around(context: str, words: str) -> str:
    """The line(s) of ``context`` holding ``words`` (line breaks inside the words removed)."""
    i = context.find(words) if words else -1
    if i < 0:
        return context.replace("\n", "")
    a = context.rfind("\n", 0, i) + 1
    b = context.find("\n", i + len(words))
    return context[a : b if b >= 0 else len(context)].replace("\n", "")


@dataclass(frozen=True)
class Match:
    precedent: Precedent
    similarity: float


class Matcher:
    """TF-IDF (character 2/3-grams, sublinear tf) cosine similarity to every precedent."""

    def __init__(self, precedents: Sequence[Precedent]) -> None:
        self.precedents = list(precedents)
        grams = [_grams(matching_key(p.text)) for p in self.precedents]
        df: Counter[str] = Counter()
        for g in grams:
            df.update(g.keys())
        n = len(grams)
        self.vocab = {t: i for i, t in enumerate(sorted(df))}
        self.idf = np.array([math.log((1 + n) / (1 + df[t])) + 1 for t in sorted(df)], dtype=np.float32)
        self.unseen_idf = float(math.log((1 + n) / 1) + 1)  # a gram no precedent has
        self.matrix = np.zeros((n, len(self.vocab)), dtype=np.float32)
        for row, g in enumerate(grams):
            for t, c in g.items():
                j = self.vocab[t]
                self.matrix[row, j] = (1 + math.log(c)) * self.idf[j]
            norm = float(np.linalg.norm(self.matrix[row]))
            if norm:
                self.matrix[row] /= norm
        self.violation = np.array([p.violation for p in self.precedents], dtype=bool)
        self.wordy = np.array([len(matching_key(p.text)) >= MIN_CASE_CHARS for p in self.precedents], dtype=bool)
        self.by_gram = np.ascontiguousarray(self.matrix.T)  # gram × precedent: a query gathers rows
        self.gram_info = {t: (j, float(self.idf[j])) for t, j in self.vocab.items()}
        # for candidate_windows: grams as integers, sorted, with their idf and their largest weight
        # in any precedent (a bound on what they can add to a similarity)
        suspects = self.matrix[self.violation & self.wordy]  # the only precedents a suspect can match
        top = suspects.max(axis=0) if len(suspects) else np.zeros(len(self.vocab), dtype=np.float32)
        codes = {_gram_code(t): (float(self.idf[j]), float(top[j])) for t, j in self.vocab.items()}
        self.gram_codes = np.array(sorted(codes), dtype=np.int64)
        self.gram_idf = np.array([codes[c][0] for c in self.gram_codes.tolist()], dtype=np.float64)
        self.gram_top = np.array([codes[c][1] for c in self.gram_codes.tolist()], dtype=np.float64)
        self._masks: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def similarities(self, text: str, *, folded: bool = False) -> np.ndarray:
        """Cosine similarity of ``text`` to each precedent (0 for an empty text)."""
        return self.similarities_of_key(_key(text) if folded else matching_key(text))

    def similarities_of_key(self, key: str, at_least: float = 0.0) -> np.ndarray:
        """As :meth:`similarities`, for a :func:`matching_key`. With ``at_least``, a text that
        cannot reach that similarity with any precedent (its grams the precedents share carry too
        little of its weight) gets zeros without the product being computed."""
        n = len(self.precedents)
        g = _grams(key)
        if not g or not n:
            return np.zeros(n, dtype=np.float32)
        info = self.gram_info
        unseen = self.unseen_idf
        cols, vals = [], []
        norm2 = known2 = 0.0
        for t, c in g.items():
            hit = info.get(t)
            w = 1.0 if c == 1 else 1 + math.log(c)
            if hit is None:
                norm2 += (w * unseen) ** 2
                continue
            w *= hit[1]
            norm2 += w * w
            known2 += w * w
            cols.append(hit[0])
            vals.append(w)
        # Cauchy–Schwarz: similarity ≤ |shared part of the query| / |query| (precedents are unit vectors)
        if not cols or known2 < (at_least * at_least) * norm2:
            return np.zeros(n, dtype=np.float32)
        return (np.array(vals, dtype=np.float32) @ self.by_gram[cols]) / math.sqrt(norm2)

    def _category_masks(self, category: str) -> tuple[np.ndarray, np.ndarray]:
        """(precedents whose main category is ``category``, precedents with it at all)."""
        got = self._masks.get(category)
        if got is None:
            got = self._masks[category] = (
                np.array([p.categories[:1] == (category,) for p in self.precedents], dtype=bool),
                np.array([category in p.categories for p in self.precedents], dtype=bool))
        return got

    def nearest(self, text: str, *, violation: bool | None = True, category: str | None = None,
                exclude: Callable[[Precedent], bool] | None = None) -> Match | None:
        sims = self.similarities(text)
        return self._best(sims, violation=violation, category=category, exclude=exclude)

    def _best(self, sims: np.ndarray, *, violation: bool | None, category: str | None,
              exclude: Callable[[Precedent], bool] | None, wordy: bool = False) -> Match | None:
        if not len(sims):
            return None
        mask = self.wordy.copy() if wordy else np.ones(len(sims), dtype=bool)
        if violation is not None:
            mask &= self.violation if violation else ~self.violation
        if category is not None:
            main, anywhere = self._category_masks(category)
            mask &= main if (mask & main).any() else anywhere
        if exclude is not None:
            mask &= np.array([not exclude(p) for p in self.precedents], dtype=bool)
        if not mask.any():
            return None
        masked = np.where(mask, sims, -1.0)
        i = int(np.argmax(masked))
        return Match(self.precedents[i], float(sims[i]))


_SENTENCE_ENDS = np.array(sorted(map(ord, "。！？!?；;\n")), dtype=np.uint32)
_CLAUSE_ENDS = np.array(sorted(map(ord, "。！？!?；;\n，,、：:")), dtype=np.uint32)


def _segments(codes: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split at the characters ``ends``: (segment id of each character, segment starts, ends)."""
    is_end = np.isin(codes, ends)
    seg = np.cumsum(is_end) - is_end  # an end character belongs to the segment it ends
    cut = np.flatnonzero(is_end)
    starts = np.concatenate(([0], cut + 1))
    stops = np.concatenate((cut, [len(codes)]))
    return seg, starts, stops


def candidate_windows(matcher: Matcher, folded: str, at_least: float) -> list[tuple[int, int]]:
    """The spans of ``folded`` (a folded text) worth comparing with the precedents: sentences, and
    the clauses of sentences longer than ``MAX_WINDOW``, with at least ``MIN_CHARS`` letters, that
    could reach ``at_least`` similarity with some violation precedent a suspect may match (a bound on the dot product: each
    shared gram's weight times its largest weight in any precedent), computed for the whole text
    at once with numpy. The exact similarity is left to the caller."""
    if not folded or not matcher.precedents:
        return []
    if len(folded) > CHUNK_CHARS:  # bounded memory: long texts in pieces cut at a line or sentence end
        cut = max(folded.rfind(c, 0, CHUNK_CHARS) for c in "\n。！？!?；;") + 1 or CHUNK_CHARS
        rest = candidate_windows(matcher, folded[cut:], at_least)
        return candidate_windows(matcher, folded[:cut], at_least) + [(s + cut, e + cut) for s, e in rest]
    codes = np.frombuffer(folded.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    digit = (codes >= 0x30) & (codes <= 0x39)
    word = digit | ((codes >= 0x61) & (codes <= 0x7A)) | ((codes >= 0x3400) & (codes <= 0x4DBF)) \
        | ((codes >= 0x4E00) & (codes <= 0x9FFF))
    prev_digit = np.concatenate(([False], digit[:-1]))
    keep = np.flatnonzero(word & ~(digit & prev_digit))  # a run of digits is one "0"
    key = codes[keep].astype(np.int64)
    key[digit[keep]] = 0x30
    out: list[tuple[int, int]] = []
    sent_seg, sent_starts, sent_stops = _segments(codes, _SENTENCE_ENDS)
    sent_len = sent_stops - sent_starts
    for ends, long_only in ((_SENTENCE_ENDS, False), (_CLAUSE_ENDS, True)):
        if long_only:  # clauses, only inside the sentences longer than MAX_WINDOW
            inside = sent_len[sent_seg[keep]] > MAX_WINDOW
            if not inside.any():
                break
            seg, starts, stops = _segments(codes, ends)
            kseg, kkey = seg[keep[inside]], key[inside]
        else:
            seg, starts, stops = sent_seg, sent_starts, sent_stops
            kseg, kkey = seg[keep], key
        letters, norm2, reach = _bounds(matcher, kseg, kkey, len(starts))
        ok = (letters >= MIN_CHARS) & (norm2 > 0) & (reach >= at_least * np.sqrt(norm2))
        if long_only:
            own = sent_seg[np.minimum(starts, len(codes) - 1)]
            ok &= (sent_len[own] > MAX_WINDOW) & ((stops - starts) < sent_len[own])
        out.extend(zip(starts[ok].tolist(), stops[ok].tolist(), strict=True))
    return sorted(set(out))


_MIX = np.int64(-7046029254386353131)  # 0x9E3779B97F4A7C15 as a signed 64-bit number


def _bounds(matcher: Matcher, kseg: np.ndarray, key: np.ndarray, nseg: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per segment: its letters, its query norm², and a bound on its dot product with any
    suspect-able precedent (each shared gram's weight × its largest weight in one)."""
    letters = np.bincount(kseg, minlength=nseg)
    grams_s, grams_c = [], []
    for n in NGRAMS:
        if len(key) < n:
            continue
        m = len(key) - n + 1
        code = np.zeros(m, dtype=np.int64)
        for k in range(n):
            code = (code << 21) | key[k : k + m]
        same = kseg[:m] == kseg[n - 1 :]
        grams_s.append(kseg[:m][same])
        grams_c.append(code[same])
    if not grams_s:
        zero = np.zeros(nseg)
        return letters, zero, zero
    gs = np.concatenate(grams_s)
    gc = np.concatenate(grams_c)
    # the same gram twice in one segment counts once with tf 1 + log(count): one sort on a hash of
    # (segment, gram), then runs of equal pairs (a hash collision could only split a run, which
    # raises the bound: still safe)
    with np.errstate(over="ignore"):
        order = np.argsort(gc ^ (gs.astype(np.int64) * _MIX), kind="stable")
    gs, gc = gs[order], gc[order]
    first = np.ones(len(gs), dtype=bool)
    first[1:] = (gs[1:] != gs[:-1]) | (gc[1:] != gc[:-1])
    run = np.flatnonzero(first)
    count = np.diff(np.append(run, len(gs)))
    us, uc = gs[run], gc[run]
    at = np.searchsorted(matcher.gram_codes, uc)
    at[at >= len(matcher.gram_codes)] = 0
    known = matcher.gram_codes[at] == uc
    idf = np.where(known, matcher.gram_idf[at], matcher.unseen_idf)
    w = (1 + np.log(count)) * idf
    norm2 = np.bincount(us, w * w, minlength=nseg)
    reach = np.bincount(us[known], w[known] * matcher.gram_top[at[known]], minlength=nseg)
    return letters, norm2, reach


def _trim(line: str, s: int, e: int) -> tuple[int, int]:
    while s < e and not line[s].strip():
        s += 1
    while e > s and not line[e - 1].strip():
        e -= 1
    return s, e


class PrecedentDetector:
    """A rule detector with precedents: ``detect(text)`` returns the rule findings, each citing
    its closest precedent, plus ``suspected`` findings for sentences close to a violation
    precedent on which no rule fired. Anything else is passed to the wrapped detector."""

    def __init__(self, detector: Any, precedents: Sequence[Precedent] | None = None, *,
                 suspect_at: float = SUSPECT_AT, margin: float = MARGIN,
                 exclude: Callable[[Precedent], bool] | None = None) -> None:
        self.detector = detector
        self.matcher = Matcher(load_library() if precedents is None else precedents)
        self.suspect_at = suspect_at
        self.margin = margin
        self.exclude = exclude
        self._basis: dict[str, str] = {}
        for rule in getattr(detector, "rules", ()):
            self._basis.setdefault(rule.category, str(rule.basis))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.detector, name)

    def with_precedents(self, extra: Iterable[Precedent]) -> PrecedentDetector:
        """The same detector, its library grown by ``extra`` (e.g. a store's reviewed findings)."""
        return PrecedentDetector(self.detector, [*self.matcher.precedents, *extra], suspect_at=self.suspect_at,
                                 margin=self.margin, exclude=self.exclude)

    def detect(self, text: str) -> list[Finding]:
        found = self.detector.detect(text)
        return self.annotate(text, found)

    def annotate(self, text: str, found: list[Finding]) -> list[Finding]:
        """``found`` (rule findings on ``text``) with citations, plus the suspected findings."""
        if not self.matcher.precedents:
            return found
        out = [self._cite(text, f) for f in found]
        covered = np.zeros(len(text) + 1, dtype=bool)  # characters a rule finding holds
        for f in found:
            covered[f.start : max(f.end, f.start + 1)] = True
        folded = char_fold(text)
        best: dict[tuple[int, int], Match] = {}  # per sentence, its best window
        for s, e in candidate_windows(self.matcher, folded, self.suspect_at):
            if covered[s:e].any():
                continue
            match = self.suspect(folded[s:e], folded=True)
            if match is None:
                continue
            other = next(((x, y) for x, y in best if x <= s and e <= y or s <= x and y <= e), None)
            if other is None or match.similarity > best[other].similarity:
                if other is not None:
                    del best[other]
                best[(s, e)] = match
        for (s, e), match in best.items():
            s, e = _trim(text, s, e)
            out.append(self._suspected(text, s, e, match))
        out.sort(key=lambda f: (f.start, f.end, f.rule_id))
        return out

    def suspect(self, words: str, *, folded: bool = False) -> Match | None:
        """The violation precedent ``words`` are suspected of resembling, or None."""
        key = _key(words) if folded else matching_key(words)
        sims = self.matcher.similarities_of_key(key, at_least=self.suspect_at)
        pos = self.matcher._best(sims, violation=True, category=None, exclude=self.exclude, wordy=True)
        if pos is None or pos.similarity < self.suspect_at:
            return None
        neg = self.matcher._best(sims, violation=False, category=None, exclude=self.exclude)
        if neg is not None and neg.similarity + self.margin >= pos.similarity:
            return None
        return pos

    def _cite(self, text: str, f: Finding) -> Finding:
        lo, hi = _sentence_around(text, f.start, f.end)
        sims = self.matcher.similarities(text[lo:hi])
        m = self.matcher._best(sims, violation=True, category=f.category, exclude=self.exclude)
        if m is None:
            return f
        if m.similarity < CITE_AT:  # nothing really alike: a case of the kind an authority decided, if any
            decided = self.matcher._best(sims, violation=True, category=f.category,
                                         exclude=lambda p: not p.authority or bool(self.exclude and self.exclude(p)))
            m = decided or m
        cite = m.precedent.citation(m.similarity if m.similarity >= CITE_AT else None)
        return dataclasses.replace(f, precedent=cite, explanation=(*f.explanation, f"先例：{cite}"))

    def _suspected(self, text: str, s: int, e: int, m: Match) -> Finding:
        p = m.precedent
        cat = p.categories[0]
        cite = p.citation(m.similarity)
        name = CATEGORY_NAMES.get(cat, cat)
        explanation = (
            f"疑似{name}：未命中任何规则，但与已有先例相近，需人工核实",
            f"先例：{cite}",
            f"相似度 {m.similarity:.2f} ≥ 疑似阈值 {self.suspect_at:.2f}",
        )
        return Finding(category=cat, rule_id=f"precedent:{p.id}", text=text[s:e], start=s, end=e,
                       score=round(m.similarity, 2), severity="low",
                       basis=self._basis.get(cat, "《中华人民共和国广告法》及“双减”相关规定"),
                       explanation=explanation, title=f"疑似{name}", tier=SUSPECTED, precedent=cite)


def _sentence_around(text: str, start: int, end: int) -> tuple[int, int]:
    lo = max(0, start - MAX_WINDOW)
    cuts = [m.end() for m in _SENTENCE_END.finditer(text, lo, start)]
    a = cuts[-1] if cuts else lo
    m2 = _SENTENCE_END.search(text[end : end + MAX_WINDOW])
    b = end + m2.start() if m2 else min(len(text), end + MAX_WINDOW)
    return a, b


@lru_cache(maxsize=1)
def default_precedent_detector() -> PrecedentDetector:
    from detectors.engine import default_detector

    return PrecedentDetector(default_detector())
