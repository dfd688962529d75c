"""The wording model: a second source of ``suspected`` (疑似) findings, for violations no rule describes.

Rules and precedents recognise what someone wrote down; an advert worded in a way nobody wrote down
passes both. This model reads how a sentence is worded instead: a logistic regression over the
sentence's character 1- to 3-grams, trained (``python -m bench.train_wording``) on the project's own
labelled texts — the rules' examples, the pitch lists of the tests and the tuning parts of the real
corpora, against compliant texts and policy prose — and shipped as data (``trained/wording.npz``).
A sentence on which no rule fired and no precedent was suspected becomes a suspected finding when

- the model's score reaches the threshold chosen at training time by cross-validation (the score at
  which 97 % of the held-out compliant texts pass), and
- the sentence is about training at all: it has at least ``MIN_LETTERS`` letters and one of the
  education words the model was trained with (a weather report or a menu bar never qualifies), and
- its category is not one the rules decide by counting (``COUNTED``: fees over 3 months, classes
  after 20:30 — a model reads words, not numbers).

Its category is the category model's best guess, and the explanation names the words that weighed
most. Pure: the weights are read once from the package, scoring is numpy over the whole text.

Features, identical in training and here: the text is folded (``normalize.fold``), split into
sentences at 。！？!?；; newlines and ``|``; in each sentence the letters (CJK, a–z, digits, %, ¥)
are kept, a run of digits is one ``0``; every 1-, 2- and 3-gram of them is hashed to one of
``2**BITS`` buckets. A sentence's feature vector is (count × idf) / √(number of its grams), so its
margin is ``intercept + Σ over its grams of weight[bucket] / √n`` — a sum per gram, computed for
every sentence of a page at once with ``numpy.bincount``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

BITS = 18  # 262,144 hash buckets
MIN_LETTERS = 11  # a shorter sentence (a title such as "机构名 - 精品课程", a label, a menu item) is never suspected
CHUNK_CHARS = 1 << 16  # the text is scored in pieces of at most this many characters (cache-sized)
MODEL_PATH = Path(__file__).resolve().parent / "trained" / "wording.npz"
RULE_ID = "wording.model"
# a model cannot count: whether fees span more than 3 months or a class ends after 20:30 is the rules'
# checks on the numbers, so the model suspects no sentence it would put in these categories
COUNTED = frozenset({"prepaid_fees", "off_hours_schedule"})

_MIX = np.uint64(0x9E3779B97F4A7C15)
_SHIFT = np.uint64(64 - BITS)
_TAG2, _TAG3 = np.uint64(1 << 62), np.uint64(1 << 63)
_SENTENCE_END, _LETTER, _DIGIT = 1, 2, 4
_ENDS = "。！？!?；;\n|"


def _classes() -> np.ndarray:
    table = np.zeros(0x110000, dtype=np.uint8)
    table[[ord(c) for c in _ENDS]] |= _SENTENCE_END
    for lo, hi in ((0x61, 0x7A), (0x3400, 0x4DBF), (0x4E00, 0x9FFF)):
        table[lo : hi + 1] |= _LETTER
    table[[ord(c) for c in "%¥"]] |= _LETTER
    table[0x30:0x3A] |= _LETTER | _DIGIT
    return table


_CLASS = _classes()


@dataclass(frozen=True, slots=True)
class Grams:
    """The hashed grams of a piece of folded text, by sentence."""

    sentence: np.ndarray  # the sentence of each gram (int64)
    bucket: np.ndarray  # its hash bucket (int64)
    starts: np.ndarray  # each sentence's first character, in the piece
    stops: np.ndarray  # one past its last character
    letters: np.ndarray  # how many letters each sentence has


def _letters(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The sentences of the folded text ``codes`` and the letters the grams are made of: (each
    sentence's start, its stop, the letters' codes with a run of digits as one "0", each letter's
    sentence, each sentence's letter count)."""
    cls = _CLASS[codes]
    end = (cls & _SENTENCE_END) != 0
    seg = np.cumsum(end) - end  # an end character belongs to the sentence it ends
    cut = np.flatnonzero(end)
    starts = np.concatenate(([0], cut + 1)).astype(np.int64)
    stops = np.concatenate((cut, [len(codes)])).astype(np.int64)
    digit = (cls & _DIGIT) != 0
    keep = (cls & _LETTER) != 0
    keep[1:] &= ~(digit[1:] & digit[:-1])
    keep = np.flatnonzero(keep)
    key = codes[keep].astype(np.uint64)
    key[digit[keep]] = 0x30
    kseg = seg[keep]
    return starts, stops, key, kseg, np.bincount(kseg, minlength=len(starts))


def grams(codes: np.ndarray) -> Grams:
    """:class:`Grams` of the folded text whose code points are ``codes`` (uint32)."""
    starts, stops, key, kseg, letters = _letters(codes)
    sentences, buckets = [], []
    for n in (1, 2, 3):
        k = len(key) - n + 1
        if k <= 0:
            break
        code = key[:k].copy()
        same = np.ones(k, dtype=bool)
        for j in range(1, n):
            code = (code << np.uint64(21)) | key[j : j + k]
            same &= kseg[j : j + k] == kseg[:k]
        if n > 1:  # tag the length: 2-grams use bits 0-41, 3-grams 0-62; a 1-gram is below 2**21
            code |= _TAG2 if n == 2 else _TAG3
        sentences.append(kseg[:k][same])
        buckets.append(((code[same] * _MIX) >> _SHIFT).astype(np.int64))
    if not buckets:
        return Grams(np.zeros(0, np.int64), np.zeros(0, np.int64), starts, stops, letters)
    return Grams(np.concatenate(sentences), np.concatenate(buckets), starts, stops, letters)


def _margins(codes: np.ndarray, weights: np.ndarray, intercept: float
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per sentence of the folded text ``codes``: (starts, stops, letters, margin) — the margin of
    :meth:`WordingModel.margin` for each sentence, the same sums as over :func:`grams`, fused: each
    letter carries the weights of the 1-, 2- and 3-gram that start at it (a gram that would leave
    its sentence weighs 0), and a sentence's sum is a difference of prefix sums. A sentence of L
    letters has L + (L-1) + (L-2) grams (none below 0)."""
    starts, stops, key, kseg, letters = _letters(codes)
    n = len(key)
    per = np.zeros(n + 1, dtype=np.float64)  # per[i + 1]: the weights of the grams starting at letter i
    if n:
        per[1:] = weights[((key * _MIX) >> _SHIFT).view(np.int64)]
    if n >= 2:
        inside = kseg[1:] == kseg[:-1]  # the 2-gram at i stays in one sentence
        code = (key[:-1] << np.uint64(21)) | key[1:]
        w2 = weights[(((code | _TAG2) * _MIX) >> _SHIFT).view(np.int64)]
        w2[~inside] = 0
        per[1:n] += w2
        if n >= 3:
            w3 = weights[((((code[:-1] << np.uint64(21)) | key[2:] | _TAG3) * _MIX) >> _SHIFT).view(np.int64)]
            w3[~(inside[:-1] & inside[1:])] = 0
            per[1 : n - 1] += w3
    prefix = np.cumsum(per)
    bounds = np.zeros(len(starts) + 1, dtype=np.int64)  # each sentence's first letter, and the end
    np.cumsum(letters, out=bounds[1:])
    total = prefix[bounds[1:]] - prefix[bounds[:-1]]
    n1 = letters.astype(np.float64)
    count = n1 + np.maximum(n1 - 1, 0) + np.maximum(n1 - 2, 0)
    margin = intercept + total / np.sqrt(np.maximum(count, 1.0))
    return starts, stops, letters, margin


def text_grams(text: str) -> np.ndarray:
    """The hashed grams of ``text`` (folded here), all sentences together: one training text."""
    from detectors.normalize import fold

    f = fold(text)
    return grams(np.frombuffer(f.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)).bucket


def _pieces(folded: str) -> list[tuple[int, int]]:
    """(start, stop) pieces of at most ``CHUNK_CHARS`` characters, cut after a sentence end."""
    out, at = [], 0
    while len(folded) - at > CHUNK_CHARS:
        cut = max(folded.rfind(c, at, at + CHUNK_CHARS) for c in _ENDS) + 1
        if cut <= at:
            cut = at + CHUNK_CHARS
        out.append((at, cut))
        at = cut
    out.append((at, len(folded)))
    return out


@dataclass(frozen=True, slots=True)
class Suspect:
    """A sentence the model suspects: its span in the text, score (probability), category, and
    the spans of the words that weighed most (offsets into the text, heaviest first)."""

    start: int
    end: int
    score: float
    category: str
    words: tuple[tuple[int, int], ...]


class WordingModel:
    """The trained model (see the module docstring)."""

    def __init__(self, weights: np.ndarray, intercept: float, threshold: float, categories: tuple[str, ...],
                 category_buckets: np.ndarray, category_weights: np.ndarray, category_intercepts: np.ndarray,
                 domain: tuple[str, ...], trained_on: int, digest: str) -> None:
        self.weights = weights.astype(np.float32)  # coefficient × idf per bucket (2**BITS)
        self.intercept = float(intercept)
        self.threshold = float(threshold)  # on the margin (log-odds)
        self.categories = categories
        # the category model, sparse: its weighted buckets (sorted) and their weights, one column per category
        self.category_buckets = category_buckets.astype(np.int64)
        self.category_weights = category_weights.astype(np.float32)
        self.category_intercepts = category_intercepts.astype(np.float32)
        self.domain = domain
        self.trained_on = trained_on
        self.digest = digest
        self._domain = re.compile("|".join(re.escape(w) for w in sorted(set(domain), key=len, reverse=True)))

    @classmethod
    def load(cls, path: Path | str = MODEL_PATH) -> WordingModel:
        with np.load(path, allow_pickle=False) as z:
            size = 1 << BITS
            weights = np.zeros(size, dtype=np.float32)
            weights[z["buckets"]] = z["weights"]
            return cls(weights, float(z["intercept"]), float(z["threshold"]), tuple(str(z["categories"]).split("\n")),
                       z["category_buckets"], z["category_weights"], z["category_intercepts"],
                       tuple(str(z["domain"]).split("\n")), int(z["trained_on"]), str(z["digest"]))

    @property
    def threshold_probability(self) -> float:
        return 1.0 / (1.0 + math.exp(-self.threshold))

    def margin(self, text: str) -> float:
        """The model's margin (log-odds) for ``text`` as one unit, as in training."""
        b = text_grams(text)
        return self.intercept + (float(self.weights[b].astype(np.float64).sum()) / math.sqrt(len(b)) if len(b) else 0.0)

    def suspects(self, folded: str, codes: np.ndarray | None = None,
                 skip: np.ndarray | None = None) -> list[Suspect]:
        """The sentences of ``folded`` (``normalize.fold`` of a text; ``codes`` its code points) the
        model suspects, skipping any sentence with a character marked in ``skip`` (a boolean array
        over the text: characters a finding already holds)."""
        if codes is None:
            codes = np.frombuffer(folded.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        out: list[Suspect] = []
        for lo, hi in _pieces(folded):
            starts, stops, letters, margin = _margins(codes[lo:hi], self.weights, self.intercept)
            for i in np.flatnonzero((margin >= self.threshold) & (letters >= MIN_LETTERS)).tolist():
                s, e = lo + int(starts[i]), lo + int(stops[i])
                if skip is not None and skip[s:e].any():
                    continue
                sentence = folded[s:e]
                if self._domain.search(sentence) is None:
                    continue
                sus = self._suspect(sentence, s, e, float(margin[i]))
                if sus.category not in COUNTED:
                    out.append(sus)
        return out

    def _suspect(self, sentence: str, s: int, e: int, margin: float) -> Suspect:
        b = text_grams(sentence)
        at = np.searchsorted(self.category_buckets, b)
        known = at < len(self.category_buckets)
        known[known] = self.category_buckets[at[known]] == b[known]
        scores = self.category_intercepts + self.category_weights[at[known]].sum(axis=0) / math.sqrt(max(len(b), 1))
        category = self.categories[int(np.argmax(scores))]
        words = tuple((s + a, s + b) for a, b in self.weighty_words(sentence))
        return Suspect(s, e, round(1.0 / (1.0 + math.exp(-margin)), 2), category, words)

    def weighty_words(self, sentence: str, most: int = 3, grams: int = 6) -> tuple[tuple[int, int], ...]:
        """Where the words that weighed most are in ``sentence`` (offsets, heaviest first): its ``grams``
        heaviest 2- and 3-grams of letters, overlapping ones merged into one span ("重点" and "点难点"
        are "重点难点"), at most ``most`` spans."""
        from detectors.normalize import fold

        f = fold(sentence)
        weighed: list[tuple[float, int, int]] = []
        for n in (3, 2):
            for i in range(len(f) - n + 1):
                w = f[i : i + n]
                if all(_CLASS[ord(c)] & _LETTER for c in w) and not any(c.isdigit() for c in w):
                    weighed.append((float(self.weights[text_grams(w)[-1]]), i, i + n))
        top = [x for x in sorted(weighed, key=lambda x: -x[0])[:grams] if x[0] > 0]
        spans: list[list[float]] = []  # [start, end, heaviest weight]
        for v, a, b in sorted(top, key=lambda x: x[1]):
            if spans and a <= spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], b)
                spans[-1][2] = max(spans[-1][2], v)
            else:
                spans.append([a, b, v])
        spans.sort(key=lambda x: -x[2])
        return tuple((int(a), int(b)) for a, b, _ in spans[:most])


@lru_cache(maxsize=1)
def default_wording_model() -> WordingModel | None:
    """The shipped model, or None if the package has none (a build without ``trained/``)."""
    return WordingModel.load() if MODEL_PATH.exists() else None
