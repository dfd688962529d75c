"""Text normalisation against evasion, with an offset map back to the original text.

Two passes:

1. a *length-preserving* character map (``str.translate``): full-width → half-width, upper →
   lower case, traditional → simplified (OpenCC ``t2s``, character by character), control
   characters, lone surrogates and emoji → space. Offsets are unchanged.
2. *edits* that change the length: invisible characters (zero-width, bidi marks, variation
   selectors…) are deleted; separators (spaces, ``*``, ``·``, ``-``, emoji…) *between two
   Chinese characters* are deleted ("拍 照 搜 题" → "拍照搜题"), except a spaced bar (" | ", the
   cells of a table or the items of a menu); pinyin/homophone spellings
   and code words are replaced ("ao数" → "奥数", "BS" → "杯赛"). Each edit is recorded so that a
   span of the normalised text maps back to the exact span of the input.

Sentence punctuation and line breaks are never removed, so words are never glued together
across a sentence boundary.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# invisible characters: zero-width, bidi controls, word joiners, BOM, soft hyphen, variation
# selectors, tags, Mongolian vowel separator, Hangul fillers, combining grapheme joiner
_INVIS = (
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\ufe00-\ufe0f\ufeff\U000e0000-\U000e007f\U000e0100-\U000e01ef"
)
# separators that an advertiser puts between characters to break keyword filters
_SEPS = " \t*·•・‧∙⋅●○◆◇■□★☆♥♡✦✧♦_~^`'\"|/\\.+=#@&-"

_SEP_SET = frozenset(_SEPS)
_EDIT_RE = re.compile(rf"[{_INVIS}{re.escape(_SEPS)}]+")
_INVIS_RE = re.compile(rf"[{_INVIS}]+")
_CJK_RE = re.compile(f"[{_CJK}]")


def _edit(m: re.Match[str]) -> str | None:
    """Delete invisible characters; delete 1–3 separators when they sit between two Chinese chars."""
    run = m.group()
    s = m.string
    a, b = m.start(), m.end()
    nsep = sum(1 for c in run if c in _SEP_SET)
    if nsep == 0:
        return ""
    if "|" in run and (" " in run or "\t" in run):
        # " | " separates the cells of a table or the items of a menu: joining them would make
        # words that are in neither ("活动报名 | 校区" → "名校")
        return None if nsep == len(run) else _INVIS_RE.sub("", run)
    if (
        nsep <= 3
        and a > 0
        and b < len(s)
        and _CJK_RE.match(s[a - 1])
        and _CJK_RE.match(s[b])
    ):
        return ""
    if nsep == len(run):
        return None
    return _INVIS_RE.sub("", run)


def _build_table() -> dict[int, str]:
    table: dict[int, str] = {}
    for cp in range(0xFF01, 0xFF5F):  # full-width ASCII
        table[cp] = chr(cp - 0xFEE0).lower()
    table[0x3000] = " "  # ideographic space
    for cp in range(ord("A"), ord("Z") + 1):
        table[cp] = chr(cp + 32)
    for cp in list(range(0, 32)) + list(range(127, 160)):
        if cp not in (10,):
            table[cp] = " "
    table[13] = "\n"
    for cp in (0x2028, 0x2029, 0x85):
        table[cp] = "\n"
    for cp in range(0xD800, 0xE000):  # lone surrogates
        table[cp] = " "
    for cp in (0x00A0, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008,
               0x2009, 0x200A, 0x202F, 0x205F):
        table[cp] = " "
    # dashes and tildes used in time and number ranges
    for ch in "—–―‐‑‒〜～":
        table[ord(ch)] = "-" if ch not in "〜～" else "~"
    table[ord("﹐")] = ","
    table[ord("﹒")] = "."
    table[ord("︰")] = ":"
    table[ord("﹕")] = ":"
    # emoji and pictographs → space (then removed when between Chinese characters)
    for lo, hi in ((0x1F000, 0x1FAFF), (0x2600, 0x27BF), (0x2B00, 0x2BFF), (0x1F900, 0x1F9FF)):
        for cp in range(lo, hi + 1):
            table[cp] = " "
    # traditional → simplified, one character at a time (length-preserving)
    try:
        import opencc

        conv = opencc.OpenCC("t2s")
        chars = [chr(cp) for cp in range(0x3400, 0xA000)] + [chr(cp) for cp in range(0xF900, 0xFB00)]
        out = conv.convert("\n".join(chars)).split("\n")
        if len(out) == len(chars):
            for a, b in zip(chars, out, strict=True):
                if a != b and len(b) == 1:
                    table[ord(a)] = b
    except Exception:  # pragma: no cover - OpenCC missing or broken: no t2s, still usable
        pass
    return table


_TABLE = _build_table()


# a line needs the length-changing edits only if it holds an invisible character or a run of 1–3
# separators between two Chinese characters (exactly the runs ``_edit`` deletes)
EVASION_RE = re.compile(rf"[{_INVIS}]|[{_CJK}][{re.escape(_SEPS)}]{{1,3}}[{_CJK}]")

_LUT = None  # numpy code-point lookup table, built on first use for big texts
_FOLD_NUMPY_MIN = 64  # characters: below, str.translate is faster (numpy's fixed cost)


def _numpy_lut():
    global _LUT
    if _LUT is None:
        import numpy as np

        lut = np.arange(0x110000, dtype=np.uint32)
        for cp, ch in _TABLE.items():
            lut[cp] = ord(ch)
        _LUT = lut
    return _LUT


def _class_points(spec: str) -> list[tuple[int, int]]:
    """The code-point ranges of a regex character-class body such as ``_CJK`` (``a-b`` = a range)."""
    out = []
    i = 0
    while i < len(spec):
        if i + 2 < len(spec) and spec[i + 1] == "-":
            out.append((ord(spec[i]), ord(spec[i + 2])))
            i += 3
        else:
            out.append((ord(spec[i]), ord(spec[i])))
            i += 1
    return out


KIND_CJK, KIND_SEP, KIND_INVIS = 1, 2, 4
_KIND_LUT = None


def kind_lut():
    """A numpy table code point → bits (``KIND_CJK``, ``KIND_SEP``, ``KIND_INVIS``): the character
    classes of ``EVASION_RE`` and ``_EDIT_RE``, for vectorised evasion checks of folded text."""
    global _KIND_LUT
    if _KIND_LUT is None:
        import numpy as np

        lut = np.zeros(0x110000, dtype=np.uint8)
        for bit, spec in ((KIND_CJK, _CJK), (KIND_INVIS, _INVIS)):
            for a, b in _class_points(spec):
                lut[a : b + 1] |= bit
        for ch in _SEPS:
            lut[ord(ch)] |= KIND_SEP
        _KIND_LUT = lut
    return _KIND_LUT


def fold_codes(text: str):
    """``(fold(text), code points of the folded text as a numpy uint32 array)``."""
    import numpy as np

    if len(text) >= _FOLD_NUMPY_MIN:
        codes = _numpy_lut()[np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)]
        return codes.tobytes().decode("utf-32-le"), codes
    f = text.translate(_TABLE)
    return f, np.frombuffer(f.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def fold(text: str) -> str:
    """The length-preserving character map of the whole text (same result as ``char_fold``).

    Texts of ``_FOLD_NUMPY_MIN`` characters or more go through a numpy code-point table (~6× faster
    than ``str.translate`` with a dict, which raises and clears a KeyError for every unmapped
    character, from a few hundred characters on); tiny ones use translate.
    """
    if len(text) >= _FOLD_NUMPY_MIN:
        try:
            import numpy as np

            lut = _numpy_lut()
            codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
            return lut[codes].tobytes().decode("utf-32-le")
        except ImportError:  # pragma: no cover - numpy is a dependency of the OCR stack
            pass
    return text.translate(_TABLE)


@dataclass
class _Layer:
    """Edits of one pass: normalised segments and the original span each came from."""

    nstart: list[int]
    ostart: list[int]
    olen: list[int]  # -1: identity segment (char-for-char); else a replacement of olen chars
    length: int  # length of the input of this pass

    def span(self, a: int, b: int) -> tuple[int, int]:
        k = bisect_right(self.nstart, a) - 1
        if self.olen[k] < 0:
            s = self.ostart[k] + (a - self.nstart[k])
        else:
            s = self.ostart[k]
        last = max(a, b - 1)
        k = bisect_right(self.nstart, last) - 1
        if self.olen[k] < 0:
            e = self.ostart[k] + (last - self.nstart[k]) + 1
        else:
            e = self.ostart[k] + self.olen[k]
        if b <= a:
            e = s
        return s, min(e, self.length)


@dataclass
class Normalized:
    original: str
    text: str
    layers: tuple[_Layer, ...]

    def to_original(self, a: int, b: int) -> tuple[int, int]:
        """Map the normalised span ``[a, b)`` to the span of the original text it came from."""
        for layer in reversed(self.layers):
            a, b = layer.span(a, b)
        return a, b


def _apply(text: str, regex: re.Pattern[str], repl) -> tuple[str, _Layer | None]:
    """Run the edit regex; ``repl(match)`` returns the replacement ('' deletes, None keeps)."""
    pieces: list[str] = []
    nstart: list[int] = []
    ostart: list[int] = []
    olen: list[int] = []
    last = 0
    n = 0
    edited = False
    for m in regex.finditer(text):
        rep = repl(m)
        if rep is None:
            continue
        edited = True
        if m.start() > last:
            nstart.append(n)
            ostart.append(last)
            olen.append(-1)
            pieces.append(text[last : m.start()])
            n += m.start() - last
        if rep:
            nstart.append(n)
            ostart.append(m.start())
            olen.append(m.end() - m.start())
            pieces.append(rep)
            n += len(rep)
        last = m.end()
    if not edited:
        return text, None
    nstart.append(n)
    ostart.append(last)
    olen.append(-1)
    pieces.append(text[last:])
    return "".join(pieces), _Layer(nstart, ostart, olen, len(text))


class Normalizer:
    """Normalises text; ``substitutions`` maps evasive spellings to canonical words.

    ``codes`` are short Latin code words (``bs`` → 杯赛) that are replaced only when they stand
    alone (no Latin letter or digit around them) right next to a Chinese character.
    """

    def __init__(self, substitutions: dict[str, str] | None = None, codes: dict[str, str] | None = None):
        self.subs = {k.translate(_TABLE): v for k, v in (substitutions or {}).items()}
        self.codes = {k.translate(_TABLE): v for k, v in (codes or {}).items()}
        alts = sorted(self.subs, key=len, reverse=True)
        code_alts = sorted(self.codes, key=len, reverse=True)
        parts = []
        if alts:
            parts.append("(?P<sub>" + "|".join(re.escape(a) for a in alts) + ")")
        if code_alts:
            parts.append(rf"(?P<code>{'|'.join(re.escape(a) for a in code_alts)})")
        self._sub_re = re.compile("|".join(parts)) if parts else None
        self._cjk = re.compile(f"[{_CJK}]")
        # the automaton finds candidate spellings in one pass; the regex then checks each one
        self._ac = None
        if alts or code_alts:
            import ahocorasick

            self._ac = ahocorasick.Automaton()
            for k in [*alts, *code_alts]:
                self._ac.add_word(k, len(k))
            self._ac.make_automaton()

    def _repl(self, m: re.Match[str]) -> str | None:
        s = m.string
        before = s[m.start() - 1] if m.start() > 0 else " "
        after = s[m.end()] if m.end() < len(s) else " "
        if m.lastgroup == "sub":
            if ("a" <= before <= "z" and "a" <= m.group()[0] <= "z") or ("a" <= after <= "z" and "a" <= m.group()[-1] <= "z"):
                return None
            return self.subs[m.group()]
        if before.isascii() and before.isalnum() or after.isascii() and after.isalnum():
            return None
        if self._cjk.match(before) or self._cjk.match(after):
            return self.codes[m.group()]
        return None

    def has_substitution(self, text: str) -> bool:
        """Whether ``text`` (already folded) holds a spelling that ``normalize`` may replace."""
        return self._ac is not None and next(self._ac.iter(text), None) is not None

    def normalize(self, text: str, folded: bool = False) -> Normalized:
        """``folded=True``: ``text`` already went through :func:`fold` (the map is idempotent)."""
        t = text if folded else fold(text)
        layers = []
        t, layer = _apply(t, _EDIT_RE, _edit)
        if layer:
            layers.append(layer)
        if self._sub_re is not None and self._ac is not None and next(self._ac.iter(t), None) is not None:
            t, layer = _apply(t, self._sub_re, self._repl)
            if layer:
                layers.append(layer)
        return Normalized(text, t, tuple(layers))


def char_fold(text: str) -> str:
    """The length-preserving part of normalisation (used for rule words and anchors): :func:`fold`."""
    return fold(text)


@lru_cache(maxsize=1)
def default_normalizer() -> Normalizer:
    return Normalizer()
