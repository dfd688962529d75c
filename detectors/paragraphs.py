"""Paragraphs: the lines of one block of text joined before detection, findings mapped back after.

The rule engine reads a text line by line (a sentence window never crosses a line break). But a
line break is often not the end of what is said: OCR puts "…不得开展" on one line of a notice and
"学科类培训…" on the next, an HTML paragraph breaks with ``<br>``, a rendered page stacks the
``<div>`` lines of one notice. This module decides which lines belong to one paragraph — from
the boxes of OCR lines, the boxes of a rendered page's text blocks, or the ``<br>`` breaks of an
HTML block — and builds a :class:`Layout`: the text the detectors read (one paragraph per line)
with a map back, so every finding keeps offsets into the original text and knows exactly which
lines (and so which boxes) its words are on.

    layout = Layout.of(reading.text, ocr_paragraphs(reading.lines))
    for finding in layout.detect(detector.detect):   # offsets into reading.text
        pieces = layout.pieces(finding.start, finding.end)   # [(line, start, end) in that line]

Pure: geometry and strings in, no I/O.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from detectors.model import Finding

# Geometry of one text block, in multiples of the line height
MAX_LINE_GAP = 1.0  # blank space between two lines of one paragraph
MAX_ROW_GAP = 1.0  # blank space between two pieces of one line that OCR read as two boxes
MAX_HEIGHT_RATIO = 1.5  # taller than this × the other line: a heading, a different block
MIN_OVERLAP = 0.5  # share of the narrower line's width the two lines must have in common ...
ALIGN = 1.0  # ... unless their left edges are within this many line heights
MIN_RENDERED_CHARS = 6  # a rendered block shorter than this (a menu item) starts no paragraph

Rect = tuple[float, float, float, float]  # left, top, right, bottom


def _word_char(c: str) -> bool:
    return c.isascii() and c.isalnum()


_PUNCT = set("，,。.！!？?；;：:、…—-·|）)】]》>”’\"' ")
CLAUSE_BREAK = "，"


def _separator(left: str, right: str, wrapped: bool) -> str:
    """What joins two lines of one paragraph. A wrapped line (the text ran out of width) goes on
    mid-sentence: nothing between CJK characters, one space between two Latin words or numbers.
    A line broken on purpose (a slogan's second line, a ``<br>``) goes on in a new clause: a comma
    unless the line before already ends with punctuation, so a negation ("作业不会拍一拍") stays
    in its own clause while a sentence frame ("不得……") still reaches the next line."""
    if not left or not right:
        return ""
    if wrapped:
        return " " if _word_char(left[-1]) and _word_char(right[0]) else ""
    return "" if left[-1] in _PUNCT or right[0] in _PUNCT else CLAUSE_BREAK


class Paragraphs(NamedTuple):
    """Which lines are one paragraph: ``groups`` of line indexes in reading order, and the lines
    that are ``wrapped`` (continue the line before them mid-sentence, because the text ran out of
    width) rather than broken on purpose."""

    groups: list[list[int]]
    wrapped: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Layout:
    """A text (lines separated by ``\\n``) and the same text with each paragraph on one line.

    ``joined`` is what the detectors read; :meth:`pieces` and :meth:`findings` map its offsets
    back to ``text``."""

    text: str
    joined: str
    line_starts: tuple[int, ...]  # offset in ``text`` of each line
    line_ends: tuple[int, ...]
    seg_starts: tuple[int, ...]  # offsets in ``joined`` where each line's copy starts, ascending
    seg_lines: tuple[int, ...]  # the line each of those copies is
    joins: bool  # whether any line break was removed (else ``joined`` is ``text``)

    @classmethod
    def of(cls, text: str, paragraphs: Paragraphs | Iterable[Sequence[int]] = (),
           wrapped: Iterable[int] = ()) -> Layout:
        """``paragraphs``: groups of line indexes (into ``text.split("\\n")``), each in reading
        order; lines in no group are paragraphs of their own. A paragraph sits where its first
        line is. ``wrapped``: the lines that continue the line before them mid-sentence (see
        :func:`_separator`); a :class:`Paragraphs` brings its own."""
        if isinstance(paragraphs, Paragraphs):
            paragraphs, wrapped = paragraphs.groups, paragraphs.wrapped
        wraps = set(wrapped)
        lines = text.split("\n")
        starts, ends, pos = [], [], 0
        for line in lines:
            starts.append(pos)
            ends.append(pos + len(line))
            pos += len(line) + 1
        groups: dict[int, list[int]] = {}
        taken: set[int] = set()
        for group in paragraphs:
            g = [i for i in group if 0 <= i < len(lines) and i not in taken]
            if len(g) > 1:
                taken.update(g)
                groups[g[0]] = g
        if not groups:
            return cls(text, text, tuple(starts), tuple(ends), tuple(starts), tuple(range(len(lines))), False)
        parts: list[str] = []
        seg_starts: list[int] = []
        seg_lines: list[int] = []
        at = 0
        first = True
        for i in range(len(lines)):
            if i in taken and i not in groups:
                continue
            if not first:
                parts.append("\n")
                at += 1
            first = False
            prev = ""
            for j in groups.get(i, (i,)):
                sep = _separator(prev, lines[j], j in wraps) if prev else ""
                parts.append(sep)
                at += len(sep)
                seg_starts.append(at)
                seg_lines.append(j)
                parts.append(lines[j])
                at += len(lines[j])
                prev = lines[j] or prev
        return cls(text, "".join(parts), tuple(starts), tuple(ends), tuple(seg_starts), tuple(seg_lines), True)

    def pieces(self, start: int, end: int) -> list[tuple[int, int, int]]:
        """The span ``joined[start:end]`` as ``(line, a, b)``: ``text.split("\\n")[line][a:b]``, one per
        line it touches, in the order read. Separators added between lines belong to no line."""
        out = []
        k = max(0, bisect.bisect_right(self.seg_starts, start) - 1)
        while k < len(self.seg_starts) and self.seg_starts[k] < end:
            line = self.seg_lines[k]
            s0 = self.seg_starts[k]
            length = self.line_ends[line] - self.line_starts[line]
            a, b = max(start, s0) - s0, min(end, s0 + length) - s0
            if b > a:
                out.append((line, a, b))
            k += 1
        return out

    def _position(self, at: int) -> int:
        """The offset in ``text`` of offset ``at`` of ``joined`` (a separator: the end of the line
        before it)."""
        k = max(0, bisect.bisect_right(self.seg_starts, at) - 1)
        line = self.seg_lines[k]
        length = self.line_ends[line] - self.line_starts[line]
        return self.line_starts[line] + min(max(0, at - self.seg_starts[k]), length)

    def to_text(self, start: int, end: int) -> tuple[int, int]:
        """The smallest span of ``text`` holding every character of ``joined[start:end]``."""
        pieces = self.pieces(start, end)
        if not pieces:
            return start, end
        ls = self.line_starts
        return min(ls[n] + a for n, a, _ in pieces), max(ls[n] + b for n, _, b in pieces)

    def findings(self, found: Iterable[Finding]) -> list[Finding]:
        """Findings on ``joined`` → the same findings on ``text`` (offsets, and ``text`` the words
        of the original span: a finding across a joined line break holds that ``\\n``)."""
        return [f for f, _ in self.placed(found)]

    def placed(self, found: Iterable[Finding]) -> list[tuple[Finding, list[tuple[int, int, int]]]]:
        """Each finding on ``joined`` mapped to ``text``, with the :meth:`pieces` of its words."""
        out = []
        for f in found:
            pieces = self.pieces(f.start, f.end)
            if self.joins:
                ls = self.line_starts
                if pieces:
                    s = min(ls[n] + a for n, a, _ in pieces)
                    e = max(ls[n] + b for n, _, b in pieces)
                else:  # an empty span (or one inside a separator): where it points, in the text
                    s = e = self._position(f.start)
                f = dataclasses.replace(f, start=s, end=e, text=self.text[s:e])
            out.append((f, pieces))
        if self.joins:
            out.sort(key=lambda x: (x[0].start, x[0].end, x[0].rule_id))
        return out

    def detect(self, detect: Callable[[str], list[Finding]]) -> list[Finding]:
        """Run ``detect`` on the paragraphs; findings with offsets into ``text``."""
        return self.findings(detect(self.joined))


# -- which lines are one paragraph ------------------------------------------------------------------


def _continues(upper: Rect, lower: Rect, line_height: float | None = None) -> bool:
    """Whether ``lower`` is the next line of the paragraph ``upper`` is in (both axis-aligned)."""
    ul, ut, ur, ub = upper
    ll, lt, lr, lb = lower
    hu, hl = ub - ut, lb - lt
    if hu <= 0 or hl <= 0:
        return False
    if max(hu, hl) > MAX_HEIGHT_RATIO * min(hu, hl) and line_height is None:
        return False
    h = line_height or (hu + hl) / 2
    gap = lt - ub
    if not -0.3 * h <= gap <= MAX_LINE_GAP * h:
        return False
    overlap = min(ur, lr) - max(ul, ll)
    narrower = min(ur - ul, lr - ll)
    return (narrower > 0 and overlap >= MIN_OVERLAP * narrower) or abs(ul - ll) <= ALIGN * h


def _same_row(left: Rect, right: Rect) -> bool:
    """Two boxes OCR read side by side that are one line: same height, same row, a small gap."""
    hl, hr = left[3] - left[1], right[3] - right[1]
    if hl <= 0 or hr <= 0 or max(hl, hr) > MAX_HEIGHT_RATIO * min(hl, hr):
        return False
    h = (hl + hr) / 2
    if abs((left[1] + left[3]) / 2 - (right[1] + right[3]) / 2) > h / 3:
        return False
    return -0.2 * h <= right[0] - left[2] <= MAX_ROW_GAP * h


def _wraps(upper: Rect, lower: Rect, line_height: float) -> bool:
    """A line that ends where the text ran out of width is at least as wide as the next one (less
    a character): wrapped text, not a line broken on purpose."""
    return upper[2] - upper[0] >= (lower[2] - lower[0]) - line_height


def _text_units(text: str) -> float:
    """A line's length in character widths: a CJK character is one, a Latin letter, digit, space
    or half-width sign a half."""
    return sum(0.5 if c.isascii() else 1.0 for c in text)


def _wraps_by_text(upper: str, lower: str) -> bool:
    """The same test on the lines' texts, where OCR boxes are up to half a character off at each
    end: the upper line holds at least as many characters as the lower one, less one."""
    return _text_units(upper) >= _text_units(lower) - 1.0


def ocr_paragraphs(lines: Sequence[Any]) -> Paragraphs:
    """Paragraphs of OCR lines (objects with ``bbox`` = (left, top, right, bottom), in reading
    order): pieces of one row with a small gap are one line; a line continues the one above it
    when it is about as tall, starts within a line height below it and lies under it (overlapping
    or left-aligned). Each line has at most one line after it, so a heading over two columns is
    not glued to both. Returns groups of line indexes in reading order, and which lines are
    wrapped (the pieces of one row; a line under a line at least as wide)."""
    rects = [tuple(float(v) for v in ln.bbox) for ln in lines]
    n = len(rects)
    # 1. rows: consecutive pieces of one visual line
    rows: list[list[int]] = []
    for i in range(n):
        if rows and _same_row(rects[rows[-1][-1]], rects[i]):
            rows[-1].append(i)
        else:
            rows.append([i])
    boxes = []
    for row in rows:
        rs = [rects[i] for i in row]
        boxes.append((min(r[0] for r in rs), min(r[1] for r in rs), max(r[2] for r in rs), max(r[3] for r in rs)))
    # 2. chains of rows, each row continued by the nearest row under it
    nxt: dict[int, int] = {}
    has_prev: set[int] = set()
    for a in range(len(rows)):
        ua = boxes[a]
        h = ua[3] - ua[1]
        best = None
        for b in range(a + 1, len(rows)):
            lb = boxes[b]
            if lb[1] > ua[3] + 2 * h:
                if (lb[1] + lb[3]) / 2 > ua[3] + 3 * h:  # rows are sorted by their middle
                    break
                continue
            if b in has_prev or not _continues(ua, lb):
                continue
            if best is None or lb[1] < boxes[best][1]:
                best = b
        if best is not None:
            nxt[a] = best
            has_prev.add(best)
    out: list[list[int]] = []
    wrapped = {i for row in rows for i in row[1:]}
    texts = [getattr(ln, "text", None) for ln in lines]
    for a, b in nxt.items():
        ta = [texts[i] for i in rows[a]]
        tb = [texts[i] for i in rows[b]]
        by_text = None not in ta and None not in tb and _wraps_by_text("".join(ta), "".join(tb))
        if by_text or _wraps(boxes[a], boxes[b], boxes[a][3] - boxes[a][1]):
            wrapped.add(rows[b][0])
    for a in range(len(rows)):
        if a in has_prev:
            continue
        group: list[int] = []
        r: int | None = a
        while r is not None:
            group.extend(rows[r])
            r = nxt.get(r)
        out.append(group)
    return Paragraphs(out, frozenset(wrapped))


def rendered_paragraphs(text: str, boxes: Sequence[dict[str, Any]]) -> Paragraphs:
    """Paragraphs of a rendered page's text: ``boxes`` are its text blocks (``start``/``end``
    offsets into ``text``, ``box`` = [x, y, width, height] in page pixels), one block per line.
    Consecutive blocks stacked like the lines of one paragraph (see :func:`ocr_paragraphs`) are
    joined; a block may wrap over several lines, so its line height is estimated from its area
    per character. Short blocks (menu items) never start a paragraph."""
    line_of = {}
    pos = 0
    for i, line in enumerate(text.split("\n")):
        line_of[pos] = i
        pos += len(line) + 1
    placed: list[tuple[int, Rect, float, int]] = []  # (line, rect, line height, chars)
    for b in boxes:
        line = line_of.get(int(b.get("start", -1)))
        box = b.get("box") or ()
        if line is None or len(box) != 4:
            continue
        x, y, w, h = (float(v) for v in box)
        chars = max(1, int(b["end"]) - int(b["start"]))
        if w <= 0 or h <= 0:
            continue
        lh = min(h, 1.25 * (w * h / chars) ** 0.5)
        placed.append((line, (x, y, x + w, y + h), lh, chars))
    out: list[list[int]] = []
    wrapped: set[int] = set()
    group: list[int] = []
    prev: tuple[int, Rect, float, int] | None = None
    for cur in placed:
        joined = False
        if prev is not None and group and prev[0] + 1 == cur[0] and prev[3] >= MIN_RENDERED_CHARS:
            lh_a, lh_b = prev[2], cur[2]
            if max(lh_a, lh_b) <= MAX_HEIGHT_RATIO * min(lh_a, lh_b):
                joined = _continues(prev[1], cur[1], (lh_a + lh_b) / 2)
        if joined:
            group.append(cur[0])
            if _wraps(prev[1], cur[1], prev[2]):
                wrapped.add(cur[0])
        else:
            if len(group) > 1:
                out.append(group)
            group = [cur[0]]
        prev = cur
    if len(group) > 1:
        out.append(group)
    return Paragraphs(out, frozenset(wrapped))


def continued_paragraphs(continued: Iterable[int], offset: int = 0) -> list[list[int]]:
    """Paragraphs from the indexes of lines that continue the line before them (an HTML block's
    lines after a ``<br>``, broken on purpose: none is wrapped); ``offset`` shifts them (a title
    line put before the text)."""
    out: list[list[int]] = []
    for i in sorted(set(continued)):
        i += offset
        if i <= 0:
            continue
        if out and out[-1][-1] == i - 1:
            out[-1].append(i)
        else:
            out.append([i - 1, i])
    return out
