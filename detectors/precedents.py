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
from detectors.normalize import char_fold, fold_codes
from detectors.wording import RULE_ID as WORDING_RULE_ID
from detectors.wording import Suspect, WordingModel, default_wording_model

LIBRARY_DIR = Path(__file__).with_name("precedents")
NGRAMS = (2, 3)
SUSPECT_AT = 0.2  # similarity to a violation precedent from which a sentence is suspected
MARGIN = 0.05  # ... if no counter-example is within this of it
# the shared cues (rules/_lexicon.yaml) that say a sentence forbids, warns or comments: the wording
# model's suspects skip such sentences (reporting words are not among them: a regulator's account
# of an advert quotes the advert)
SPEAKER_CUES = ("negation_sentence", "negation_list", "commentary")
CITE_AT = 0.15  # below this a rule finding cites a case of its kind ("同类：…") rather than a similar one
MIN_CHARS = 6  # a sentence with fewer letters is not compared (menus, labels)
# a shorter precedent ("一对一辅导"; "卓越教育暑期托管班", a name and a keyword) is the rules' job: it makes no suspect
MIN_CASE_CHARS = 12
MAX_WINDOW = 60  # a longer sentence is also compared clause by clause
CHUNK_CHARS = 1 << 16  # candidate_windows works on at most this many characters at once
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
        self.decided = np.array([bool(p.authority) for p in self.precedents], dtype=bool)  # an authority decided it
        self.by_gram = np.ascontiguousarray(self.matrix.T)  # gram × precedent: a query gathers rows
        self.gram_info = {t: (j, float(self.idf[j])) for t, j in self.vocab.items()}
        # for candidate_windows: per gram (vocabulary index) its idf and its largest weight in a
        # precedent a suspect can match; the postings of those precedents (gram → rows, weights);
        # and the grams as integers in an open-addressing hash table, looked up all at once
        suspects = self.matrix[self.violation & self.wordy]  # the only precedents a suspect can match
        self.gram_idf = self.idf.astype(np.float64)
        top = (suspects.max(axis=0) if len(suspects) else np.zeros(len(self.vocab))).astype(np.float64)
        # indexed by vocabulary index, the last entry for index -1 (a gram no precedent has)
        self.pad_idf2 = np.append(self.gram_idf ** 2, self.unseen_idf ** 2)
        self.pad_reach = np.append(self.gram_idf * top, 0.0)
        gram, row = np.nonzero(suspects.T)
        self.post_rows = len(suspects)
        self.post_prec = row.astype(np.int64)
        self.post_w = suspects[row, gram].astype(np.float64)
        self.post_ptr = np.searchsorted(gram, np.arange(len(self.vocab) + 1)).astype(np.int64)
        self._table_bits = max(4, (8 * len(self.vocab)).bit_length())
        size = 1 << self._table_bits
        empty = len(self.vocab)  # a slot's value: a vocabulary index, or this
        self._table = np.full(size, empty, dtype=np.int32)
        self._probes = 0
        codes = np.array([_gram_code(t) for t in self.vocab], dtype=np.int64)
        self._vocab_codes = np.append(codes, -1)  # by vocabulary index; an empty slot's is no gram's
        for j, h in enumerate(self._slots(codes).tolist()):
            k = 0
            while self._table[(h + k) & (size - 1)] != empty:
                k += 1
            self._table[(h + k) & (size - 1)] = j
            self._probes = max(self._probes, k)
        self._masks: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def _slots(self, codes: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return (codes.view(np.uint64) * _MIX >> np.uint64(64 - self._table_bits)).view(np.int64)

    def lookup(self, codes: np.ndarray) -> np.ndarray:
        """The vocabulary index of each gram code (:func:`_gram_code`), -1 for a gram no precedent has."""
        mask = len(self._table) - 1
        empty = len(self.vocab)
        slot = self._slots(codes)
        index = self._table[slot]
        hit = self._vocab_codes[index] == codes
        out = np.where(hit, index, -1)
        todo = np.flatnonzero((index != empty) & ~hit)  # an occupied slot of another gram: probe on
        for k in range(1, self._probes + 1):
            if not len(todo):
                break
            index = self._table[(slot[todo] + k) & mask]
            hit = self._vocab_codes[index] == codes[todo]
            out[todo[hit]] = index[hit]
            todo = todo[(index != empty) & ~hit]
        return out

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

    def allowed(self, exclude: Callable[[Precedent], bool]) -> np.ndarray:
        """The mask of the precedents ``exclude`` does not exclude."""
        return np.array([not exclude(p) for p in self.precedents], dtype=bool)

    def nearest(self, text: str, *, violation: bool | None = True, category: str | None = None,
                exclude: Callable[[Precedent], bool] | None = None) -> Match | None:
        sims = self.similarities(text)
        return self._best(sims, violation=violation, category=category, exclude=exclude)

    def _best(self, sims: np.ndarray, *, violation: bool | None, category: str | None,
              exclude: Callable[[Precedent], bool] | None, wordy: bool = False,
              allowed: np.ndarray | None = None) -> Match | None:
        """The precedent of the kind asked for closest by ``sims``; ``allowed``: a mask of the
        precedents it may be (as :meth:`allowed` of an ``exclude``)."""
        if not len(sims):
            return None
        mask = self.wordy.copy() if wordy else np.ones(len(sims), dtype=bool)
        if violation is not None:
            mask &= self.violation if violation else ~self.violation
        if category is not None:
            main, anywhere = self._category_masks(category)
            mask &= main if (mask & main).any() else anywhere
        if exclude is not None:
            mask &= self.allowed(exclude)
        if allowed is not None:
            mask &= allowed
        if not mask.any():
            return None
        masked = np.where(mask, sims, -1.0)
        i = int(np.argmax(masked))
        return Match(self.precedents[i], float(sims[i]))


# what each code point is to the matcher, as bits of one table (read once per character)
_IS_SENTENCE_END, _IS_CLAUSE_END, _IS_LETTER, _IS_DIGIT = 1, 2, 4, 8


def _classes() -> np.ndarray:
    table = np.zeros(0x110000, dtype=np.uint8)
    table[[ord(c) for c in "。！？!?；;\n"]] |= _IS_SENTENCE_END
    table[[ord(c) for c in "。！？!?；;\n，,、：:"]] |= _IS_CLAUSE_END
    for lo, hi in ((0x61, 0x7A), (0x3400, 0x4DBF), (0x4E00, 0x9FFF)):  # as _NOT_WORD keeps them
        table[lo : hi + 1] |= _IS_LETTER
    table[0x30:0x3A] |= _IS_LETTER | _IS_DIGIT
    return table


_CLASS = _classes()
_SENTENCE_RE = re.compile(r"[^。！？!?；;\n]+")
_CLAUSE_RE = re.compile(r"[^。！？!?；;\n，,、：:]+")
_SLACK = 1e-4  # the bounds are computed in float64, the exact similarity in float32: never gate on a hair


def text_pieces(folded: str) -> list[tuple[int, str]]:
    """``folded`` as (offset, piece) pieces of at most ``CHUNK_CHARS`` characters, cut at a line or
    sentence end when the piece has one (bounded memory); windows never cross a cut."""
    out = []
    at = 0
    while len(folded) - at > CHUNK_CHARS:
        cut = max(folded.rfind(c, at, at + CHUNK_CHARS) for c in "\n。！？!?；;") + 1
        if cut <= at:
            cut = at + CHUNK_CHARS
        out.append((at, folded[at:cut]))
        at = cut
    out.append((at, folded[at:]))
    return out


def all_windows(folded: str) -> list[tuple[int, int]]:
    """Every span of ``folded`` the matcher compares, by the definition and without any shortcut:
    in each piece (:func:`text_pieces`), the sentences, and the clauses of the sentences longer
    than ``MAX_WINDOW`` characters, that have at least ``MIN_CHARS`` letters. The reference the
    vectorised :func:`candidate_windows` is tested against."""
    out = set()
    for at, piece in text_pieces(folded):
        for m in _SENTENCE_RE.finditer(piece):
            if len(_key(m.group())) >= MIN_CHARS:
                out.add((at + m.start(), at + m.end()))
            if m.end() - m.start() > MAX_WINDOW:
                for c in _CLAUSE_RE.finditer(piece, m.start(), m.end()):
                    if c.end() - c.start() < m.end() - m.start() and len(_key(c.group())) >= MIN_CHARS:
                        out.add((at + c.start(), at + c.end()))
    return sorted(out)


def _segments(cls: np.ndarray, end: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split at the characters of class ``end`` (``cls``: each character's ``_CLASS``): (segment id
    of each character, segment starts, ends)."""
    is_end = (cls & end) != 0
    seg = np.cumsum(is_end) - is_end  # an end character belongs to the segment it ends
    cut = np.flatnonzero(is_end)
    starts = np.concatenate(([0], cut + 1))
    stops = np.concatenate((cut, [len(cls)]))
    return seg, starts, stops


def candidate_windows(matcher: Matcher, folded: str, at_least: float,
                      codes: np.ndarray | None = None) -> list[tuple[int, int]]:
    """The windows of :func:`all_windows` that could reach ``at_least`` similarity with some
    violation precedent a suspect may match, computed for the whole text at once with numpy (an
    upper bound on each similarity, see :func:`_reach`): a window left out cannot be suspected.
    The exact similarity is left to the caller. ``codes``: the code points of ``folded`` if the
    caller has them."""
    if not folded or not matcher.precedents:
        return []
    if codes is None:
        codes = np.frombuffer(folded.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    out: list[tuple[int, int]] = []
    for at, piece in text_pieces(folded):
        out.extend((s + at, e + at) for s, e in _piece_windows(matcher, codes[at : at + len(piece)], at_least))
    return sorted(out)


def _piece_windows(matcher: Matcher, codes: np.ndarray, at_least: float) -> list[tuple[int, int]]:
    """:func:`candidate_windows` for one piece (``codes``: its code points)."""
    cls = _CLASS[codes]
    digit = (cls & _IS_DIGIT) != 0
    word = (cls & _IS_LETTER) != 0
    prev_digit = np.concatenate(([False], digit[:-1]))
    keep = np.flatnonzero(word & ~(digit & prev_digit))  # a run of digits is one "0"
    if len(keep) < MIN_CHARS:
        return []
    key = codes[keep].astype(np.int64)
    key[digit[keep]] = 0x30
    grams = _grams_of(matcher, key)
    out: set[tuple[int, int]] = set()
    sent_seg, sent_starts, sent_stops = _segments(cls, _IS_SENTENCE_END)
    sent_len = sent_stops - sent_starts
    kseg = sent_seg[keep]  # the segment of each letter: non-decreasing, a segment's letters are contiguous
    letters = np.bincount(kseg, minlength=len(sent_starts))
    ok = letters >= MIN_CHARS
    if ok.any():
        ok &= _reach(matcher, key, grams, kseg, letters, at_least, ok)
    out.update(zip(sent_starts[ok].tolist(), sent_stops[ok].tolist(), strict=True))
    # clauses, only inside the sentences longer than MAX_WINDOW (so only their grams are read)
    if (sent_len > MAX_WINDOW).any():
        inside = sent_len[kseg] > MAX_WINDOW
        seg, starts, stops = _segments(cls, _IS_CLAUSE_END)
        kseg = seg[keep]
        letters = np.bincount(kseg, minlength=len(starts))
        own = sent_seg[np.minimum(starts, len(codes) - 1)]
        ok = (letters >= MIN_CHARS) & (sent_len[own] > MAX_WINDOW) & ((stops - starts) < sent_len[own])
        if ok.any():
            ok &= _reach(matcher, key, [(n, j, at[inside[at]]) for n, j, at in grams], kseg, letters, at_least, ok)
        out.update(zip(starts[ok].tolist(), stops[ok].tolist(), strict=True))
    return sorted(out)


_MIX = np.uint64(0x9E3779B97F4A7C15)
_MIX2 = np.uint64(0xC2B2AE3D27D4EB4F)


def _gram_codes(key: np.ndarray, n: int, at: np.ndarray | None = None) -> np.ndarray:
    """The codes (:func:`_gram_code`) of the n-grams of ``key`` starting at the letters ``at`` (all)."""
    if at is None:
        k = len(key) - n + 1
        code = key[:k] << 21 | key[1 : k + 1]
        return code << 21 | key[2 : k + 2] if n == 3 else code
    code = key[at] << 21 | key[at + 1]
    return code << 21 | key[at + 2] if n == 3 else code


def _grams_of(matcher: Matcher, key: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Per gram length n of ``NGRAMS`` (2 and 3): (n, the vocabulary index of the gram starting at
    each letter of ``key``, -1 for a gram no precedent has; the letters where a known one starts).
    A trigram is only looked up where both its bigrams are known (a precedent holding it holds them)."""
    out = []
    if len(key) < 2:
        return out
    j2 = matcher.lookup(_gram_codes(key, 2))
    known = j2 >= 0
    out.append((2, j2, np.flatnonzero(known)))
    if len(key) >= 3:
        both = np.flatnonzero(known[:-1] & known[1:])
        j3 = np.full(len(key) - 2, -1, dtype=np.int64)
        if len(both):
            j3[both] = matcher.lookup(_gram_codes(key, 3, both))
        out.append((3, j3, both[j3[both] >= 0]))
    return out


def _reach(matcher: Matcher, key: np.ndarray, grams: list[tuple[int, np.ndarray, np.ndarray]],
           kseg: np.ndarray, letters: np.ndarray, at_least: float, wanted: np.ndarray) -> np.ndarray:
    """Per segment, whether its similarity to some suspect-able precedent (violation, at least
    ``MIN_CASE_CHARS`` letters) may reach ``at_least``; only the ``wanted`` segments are looked at.
    ``key``: the letters, ``kseg``: the segment of each (a segment's letters are contiguous),
    ``letters``: how many each segment has, ``grams``: :func:`_grams_of` the letters (a gram across
    two segments is in neither).

    The exact similarity is Σ_g (1 + ln c_g)·idf_g·p_g / |q| over the distinct grams g of the
    segment (c_g: how often; p: the precedent's unit vector), with |q|² = Σ_g (1 + ln c_g)²·idf_g².
    Upper bounds, in three stages, none of which sorts:

    1. dot product ≤ Σ over every occurrence of idf_g·top_g (``c ≥ 1 + ln c``; top_g: the gram's
       largest weight in a suspect-able precedent), and |q|² ≥ r·Σ over every occurrence of idf_g²,
       r = min over c ≤ C of (1 + ln c)²/c, C = the segment's letters − 1 (no gram occurs more
       often), r = 1 up to C = 12. Only the known grams are read: a segment of L letters has
       L − n + 1 n-grams, the unknown ones all of the largest idf;
    2. for the segments left: dot product ≤ Σ over every occurrence of idf_g·p_g, per precedent
       through its postings (the same norm);
    3. for the segments left: also |q|² ≥ Σ of idf_g² over distinct (segment, gram) pairs, one
       occurrence per occupied slot of a hash table (two pairs sharing a slot count once: lower,
       still a bound); the larger of the two lower bounds is used."""
    m = matcher
    nseg = len(letters)
    unseen2 = m.unseen_idf ** 2
    norm2 = np.zeros(nseg)
    reach = np.zeros(nseg)
    known_s, known_j = [], []  # the known grams inside a segment: their segment, vocabulary index
    for n, j, at in grams:
        norm2 += unseen2 * np.maximum(letters - n + 1, 0)
        gs = kseg[at]
        inner = gs == kseg[at + n - 1]
        gs, jk = gs[inner], j[at[inner]]
        known_s.append(gs)
        known_j.append(jk)
        norm2 += np.bincount(gs, m.pad_idf2[jk] - unseen2, minlength=nseg)
        reach += np.bincount(gs, m.pad_reach[jk], minlength=nseg)
    most = np.maximum(letters - 1, 1).astype(np.float64)
    norm = np.sqrt(np.minimum(1.0, (1 + np.log(most)) ** 2 / most) * np.maximum(norm2, 0.0))
    ok = wanted & (reach >= (at_least - _SLACK) * norm) & (norm > 0)
    rows = np.flatnonzero(ok)
    if not len(rows):
        return ok
    # stage 2: the dot product per precedent, through the postings of the known grams
    ks = np.concatenate(known_s)
    jk = np.concatenate(known_j)
    sel = ok[ks]
    ks, jk = ks[sel], jk[sel]
    lo = m.post_ptr[jk]
    cnt = m.post_ptr[jk + 1] - lo
    total = int(cnt.sum())
    if not total:
        return np.zeros(nseg, dtype=bool)
    occ = np.repeat(np.arange(len(jk)), cnt)
    at = np.repeat(lo - (np.cumsum(cnt) - cnt), cnt) + np.arange(total)
    local = np.cumsum(ok) - 1
    npre = m.post_rows
    dot = np.bincount(local[ks[occ]] * npre + m.post_prec[at], m.gram_idf[jk[occ]] * m.post_w[at],
                      minlength=len(rows) * npre).reshape(len(rows), npre).max(axis=1)
    keep = dot >= (at_least - _SLACK) * norm[rows]
    ok[rows] = keep
    rows, dot = rows[keep], dot[keep]
    if not len(rows):
        return ok
    # stage 3: a closer norm, from every gram of the segments left (their letters: a run of ``key``)
    first_letter = np.searchsorted(kseg, rows)
    parts = []
    for n, j, _ in grams:
        cnt = np.maximum(letters[rows] - n + 1, 0)
        at = np.repeat(first_letter - (np.cumsum(cnt) - cnt), cnt) + np.arange(int(cnt.sum()))
        parts.append((np.repeat(rows, cnt), _gram_codes(key, n, at), j[at]))
    gs = np.concatenate([p[0] for p in parts])
    gc = np.concatenate([p[1] for p in parts])
    j = np.concatenate([p[2] for p in parts])
    bits = max(4, (4 * len(gs)).bit_length())
    with np.errstate(over="ignore"):
        slot = ((gc.view(np.uint64) * _MIX + gs.view(np.uint64)) * _MIX2 >> np.uint64(64 - bits)).view(np.int64)
    table = np.empty(1 << bits, dtype=np.int64)
    ids = np.arange(len(gs))
    table[slot] = ids
    first = table[slot] == ids
    distinct = np.sqrt(np.bincount(gs[first], m.pad_idf2[j[first]], minlength=nseg))
    closer = np.maximum(norm[rows], distinct[rows])  # both are lower bounds of the norm
    ok[rows] = dot >= (at_least - _SLACK) * closer
    return ok


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
                 exclude: Callable[[Precedent], bool] | None = None,
                 wording: WordingModel | None | bool = True) -> None:
        self.detector = detector
        # the wording model, the suspected tier's second source (True: the shipped one; False/None: none)
        self.wording = default_wording_model() if wording is True else (wording or None)
        self.matcher = Matcher(load_library() if precedents is None else precedents)
        self.suspect_at = suspect_at
        self.margin = margin
        self.exclude = exclude
        self._allowed: tuple[Callable[[Precedent], bool] | None, np.ndarray | None] = (None, None)
        self._citations: dict[tuple[str, str], str | None] = {}  # (sentence, category) → citation
        self._texts: dict[tuple[Precedent, str], str] = {}  # (case, similarity as worded) → its citation
        self._basis: dict[str, str] = {}
        for rule in getattr(detector, "rules", ()):
            self._basis.setdefault(rule.category, str(rule.basis))
        # a sentence that forbids, warns or comments is somebody speaking *about* adverts: the wording
        # model suspects none of them (the rules read these cues word by word; the model reads wording)
        self._has_cue: Callable[[str, Iterable[str]], bool] | None = getattr(detector, "has_cue", None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.detector, name)

    def with_precedents(self, extra: Iterable[Precedent]) -> PrecedentDetector:
        """The same detector, its library grown by ``extra`` (e.g. a store's reviewed findings)."""
        return PrecedentDetector(self.detector, [*self.matcher.precedents, *extra], suspect_at=self.suspect_at,
                                 margin=self.margin, exclude=self.exclude, wording=self.wording or False)

    def detect(self, text: str) -> list[Finding]:
        both = getattr(self.detector, "detect_folded", None)
        if both is None or not isinstance(text, str):
            return self.annotate(text, self.detector.detect(text))
        # the rule engine folds the text anyway: the matcher reads the same fold
        found, folded, codes = both(text)
        return self.annotate(text, found, folded=folded, codes=codes)

    def annotate(self, text: str, found: list[Finding], *, folded: str | None = None,
                 codes: np.ndarray | None = None) -> list[Finding]:
        """``found`` (rule findings on ``text``) with citations, plus the suspected findings.
        ``folded``, ``codes``: ``fold_codes(text)``, if the caller has them."""
        if not self.matcher.precedents and self.wording is None:
            return found
        out = [self._cite(text, f) for f in found]
        covered = np.zeros(len(text) + 1, dtype=bool)  # characters a rule finding holds
        for f in found:
            covered[f.start : max(f.end, f.start + 1)] = True
        if folded is None or codes is None:
            folded, codes = fold_codes(text)
        best: dict[tuple[int, int], Match] = {}  # per sentence, its best window
        windows = candidate_windows(self.matcher, folded, self.suspect_at, codes) if self.matcher.precedents else []
        for s, e in windows:
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
            covered[s:e] = True
            s, e = _trim(text, s, e)
            out.append(self._suspected(text, s, e, match))
        if self.wording is not None:
            # what no rule and no precedent holds, the wording model may still suspect
            for sus in self.wording.suspects(folded, codes, covered):
                if self._has_cue is not None and self._has_cue(folded[sus.start : sus.end], SPEAKER_CUES):
                    continue
                s, e = _trim(text, sus.start, sus.end)
                out.append(self._worded(text, s, e, sus))
        out.sort(key=lambda f: (f.start, f.end, f.rule_id))
        return out

    def _allowed_mask(self) -> np.ndarray | None:
        """The precedents ``self.exclude`` leaves (None: all), computed once per ``exclude``."""
        if self.exclude is None:
            return None
        if self._allowed[0] is not self.exclude:
            self._allowed = (self.exclude, self.matcher.allowed(self.exclude))
        return self._allowed[1]

    def suspect(self, words: str, *, folded: bool = False) -> Match | None:
        """The violation precedent ``words`` are suspected of resembling, or None."""
        key = _key(words) if folded else matching_key(words)
        sims = self.matcher.similarities_of_key(key, at_least=self.suspect_at)
        allowed = self._allowed_mask()
        pos = self.matcher._best(sims, violation=True, category=None, exclude=None, wordy=True, allowed=allowed)
        if pos is None or pos.similarity < self.suspect_at:
            return None
        neg = self.matcher._best(sims, violation=False, category=None, exclude=None, allowed=allowed)
        if neg is not None and neg.similarity + self.margin >= pos.similarity:
            return None
        return pos

    def _cite(self, text: str, f: Finding) -> Finding:
        lo, hi = _sentence_around(text, f.start, f.end)
        memo = (text[lo:hi], f.category)
        cite = self._citations.get(memo, "") if self.exclude is None else ""
        if cite == "":
            cite = self._citation(text[lo:hi], f.category)
            if self.exclude is None:
                if len(self._citations) >= 20_000:
                    self._citations.clear()
                self._citations[memo] = cite
        if cite is None:
            return f
        return dataclasses.replace(f, precedent=cite, explanation=(*f.explanation, f"先例：{cite}"))

    def _citation(self, sentence: str, category: str) -> str | None:
        """The citation of a rule finding of ``category`` in ``sentence``: its closest violation
        precedent of the category, or below ``CITE_AT`` a case of the kind an authority decided."""
        sims = self.matcher.similarities(sentence)
        allowed = self._allowed_mask()
        m = self.matcher._best(sims, violation=True, category=category, exclude=None, allowed=allowed)
        if m is None:
            return None
        if m.similarity < CITE_AT:  # nothing really alike: a case of the kind an authority decided, if any
            decided = self.matcher.decided if allowed is None else self.matcher.decided & allowed
            m = self.matcher._best(sims, violation=True, category=category, exclude=None, allowed=decided) or m
        return self._text_of(m.precedent, m.similarity if m.similarity >= CITE_AT else None)

    def _text_of(self, p: Precedent, similarity: float | None) -> str:
        """``p.citation(similarity)``, each one worded once."""
        key = (p, "" if similarity is None else f"{similarity:.2f}")  # all the wording depends on
        got = self._texts.get(key)
        if got is None:
            if len(self._texts) >= 20_000:
                self._texts.clear()
            got = self._texts[key] = p.citation(similarity)
        return got

    def _suspected(self, text: str, s: int, e: int, m: Match) -> Finding:
        p = m.precedent
        cat = p.categories[0]
        cite = self._text_of(p, m.similarity)
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

    def _worded(self, text: str, s: int, e: int, sus: Suspect) -> Finding:
        """A suspected finding of the wording model, citing the closest precedent of its category."""
        cat = sus.category
        name = CATEGORY_NAMES.get(cat, cat)
        model = self.wording
        assert model is not None
        cite = self._citation(text[s:e], cat) or ""
        explanation = (
            f"疑似{name}：未命中任何规则，也无相近先例，但措辞与已知违规广告相近，需人工核实",
            "起作用的用语：" + ("".join(f"“{text[a:b]}”" for a, b in sus.words) or "（整句措辞）"),
            f"类别由措辞模型推断（模型由 {model.trained_on} 条已标注文本训练）",
            f"措辞模型评分 {sus.score:.2f} ≥ 疑似阈值 {model.threshold_probability:.2f}",
            *((f"先例：{cite}",) if cite else ()),
        )
        return Finding(category=cat, rule_id=WORDING_RULE_ID, text=text[s:e], start=s, end=e, score=sus.score,
                       severity="low", basis=self._basis.get(cat, "《中华人民共和国广告法》及“双减”相关规定"),
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
