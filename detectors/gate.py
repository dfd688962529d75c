"""The vectorised line gate: which lines of a text can make which patterns fire, for the whole text
at once, before any per-line Python work.

A pattern *needs* some word groups (its anchors, each ``require`` group of its rule, and — when its
base score alone cannot reach the threshold — the words of the rule's score-raising contexts), and
it can only fire in a line that has a word of every group it needs. The gate answers "which groups
have a word in this line" for every line with numpy, in a few passes over the code points:

* every character of every gate word gets a small id (the *alphabet*; all other characters are 0);
* a one-character word is found through a table id → groups, a longer word through a table of its
  first two characters (bigram) → groups. That is a superset of the words really present (a
  bigram stands for every word that starts with it): the gate may let a line through that cannot
  fire, never the reverse;
* the group bits found in a line are OR-ed together (``bitwise_or.reduceat`` over the hits), and a
  pattern is alive in a line when all the bits it needs are set.

Lines with an evasion (an invisible character, or 1–3 separators between two Chinese characters:
what ``EVASION_RE`` finds) are normalised later, which deletes characters and joins words; for
them the gate also looks at the line with *every* separator and invisible character removed, and
at the words with their separators removed. A word of the normalised line is in one or the other.
Lines with a respelt word (pinyin, code words) get every pattern.

The cost is a handful of numpy passes per character plus a little work per word hit: it does not
grow with the number of rules or words (only the width of the group bit sets does, 64 groups per
machine word).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from detectors.normalize import _INVIS, _SEPS, KIND_CJK, KIND_INVIS, KIND_SEP, _class_points, kind_lut

_DIRECT_MAX = 1 << 22  # bigram tables up to this size are indexed directly (exact), else hashed
_HASH_SIZE = 4194301  # a prime
_CHUNK = 1 << 17  # characters per pass of the tables (whole lines)
_FIB = 0x9E3779B97F4A7C15  # 2**64 / golden ratio: multiplicative hashing of trigram keys
_U64 = (1 << 64) - 1
_DISTINCT_MIN = 256  # lines with a gate word: from this many on, their distinct group sets are tested once


_INVIS_POINTS = _class_points(_INVIS)


def _strip(word: str) -> str:
    """``word`` without the separators and invisible characters that normalisation may delete."""
    return "".join(
        c for c in word if c not in _SEPS and not any(a <= ord(c) <= b for a, b in _INVIS_POINTS)
    )


class _Tables:
    """Character and bigram tables of one word list: code point → alphabet id → group bits."""

    def __init__(self, word_bits: dict[str, int], width: int) -> None:
        chars = sorted({c for w in word_bits for c in w})
        self.size = len(chars) + 1
        dtype = np.uint16 if self.size < (1 << 16) else np.uint32
        self.lut = np.zeros(0x110000, dtype=dtype)
        if chars:
            self.lut[np.array([ord(c) for c in chars], dtype=np.int64)] = np.arange(1, self.size, dtype=dtype)
        ids = {c: i + 1 for i, c in enumerate(chars)}
        self.direct = self.size * self.size <= _DIRECT_MAX
        nkeys = self.size * self.size if self.direct else _HASH_SIZE
        char_bits: dict[int, int] = {}
        pair_bits: dict[int, int] = {}
        tri_bits: dict[int, int] = {}
        # trigrams are hashed into a small table: ~1/64 filled, it stays in cache. Multiplicative
        # (Fibonacci) hashing: the low bits of the exact key alone made common trigrams of plain
        # text share a slot with a gate word's, ~35 % more lines let through on page-like text
        ntri = sum(1 for w in word_bits if len(w) >= 3)
        self.tri_bits = max(12, (64 * ntri).bit_length())
        self.tri_mask = (1 << self.tri_bits) - 1
        for w, bits in word_bits.items():
            if len(w) == 1:
                k = ids[w]
                char_bits[k] = char_bits.get(k, 0) | bits
            elif len(w) == 2:
                k = self._key(ids[w[0]], ids[w[1]])
                pair_bits[k] = pair_bits.get(k, 0) | bits
            else:
                k = self._tri_key((ids[w[0]] * self.size + ids[w[1]]) * self.size + ids[w[2]])
                tri_bits[k] = tri_bits.get(k, 0) | bits
        self.char_cls, self.char_masks = self._classes(char_bits, self.size, width)
        self.pair_cls, self.pair_masks = self._classes(pair_bits, nkeys, width)
        self.tri_cls, self.tri_masks = self._classes(tri_bits, self.tri_mask + 1, width)
        # a trigram is looked up only where its first two characters start some 3+-character word
        self.tri_heads = np.zeros(nkeys, dtype=bool)
        for w in word_bits:
            if len(w) >= 3:
                self.tri_heads[self._key(ids[w[0]], ids[w[1]])] = True

    def _tri_key(self, exact: int) -> int:
        return ((exact * _FIB) & _U64) >> (64 - self.tri_bits)

    def _key(self, a: int, b: int) -> int:
        k = a * self.size + b
        return k if self.direct else k % _HASH_SIZE

    @staticmethod
    def _classes(bits: dict[int, int], nkeys: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """A table key → class (0: nothing) and the group bits of each class, as ``width`` uint64."""
        distinct = {m: i + 1 for i, m in enumerate(dict.fromkeys(bits.values()))}
        cls = np.zeros(nkeys, dtype=np.uint16 if len(distinct) < (1 << 16) else np.uint32)
        masks = np.zeros((len(distinct) + 1, width), dtype=np.uint64)
        for m, ci in distinct.items():
            for w in range(width):
                masks[ci, w] = (m >> (64 * w)) & 0xFFFFFFFFFFFFFFFF
        for k, m in bits.items():
            cls[k] = distinct[m]
        return cls, masks

    def hits(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions with a possible word start, their group bits (n, width))."""
        ids = self.lut[codes]
        n = len(ids)
        if n == 0:
            return np.zeros(0, dtype=np.int64), self.char_masks[:0]
        key = ids.astype(np.uint32 if self.direct else np.int64)
        key *= self.size
        key[:-1] += ids[1:]
        if not self.direct:
            key %= _HASH_SIZE
        pc = self.pair_cls[key]
        hit = pc != 0
        hit |= self.char_cls[ids] != 0
        # 3+-character words: the trigram at the positions whose bigram starts one
        tp = np.flatnonzero(self.tri_heads[key])
        if len(tp):
            third = ids[np.minimum(tp + 2, n - 1)].astype(np.uint64)
            third[tp + 2 >= n] = 0
            tk = ids[tp].astype(np.uint64) * np.uint64(self.size) + ids[np.minimum(tp + 1, n - 1)]
            tk = ((tk * np.uint64(self.size) + third) * np.uint64(_FIB)) >> np.uint64(64 - self.tri_bits)
            tc = self.tri_cls[tk]
            some = tc != 0
            tp, tc = tp[some], tc[some]
            hit[tp] = True
        pos = np.flatnonzero(hit)
        masks = np.take(self.pair_masks, pc[pos], axis=0)
        masks |= np.take(self.char_masks, self.char_cls[ids[pos]], axis=0)
        if len(tp):
            masks[np.searchsorted(pos, tp)] |= np.take(self.tri_masks, tc, axis=0)
        return pos, masks


class LineGate:
    """``groups[g]``: the words of group ``g``; ``needs[p]``: the groups pattern ``p`` needs (all of
    them; a pattern that needs nothing is alive in every line); ``respelt``: words that mark a line
    for respelling (it then gets every pattern)."""

    def __init__(self, groups: Sequence[Iterable[str]], needs: Sequence[Iterable[int]],
                 respelt: Iterable[str] = ()) -> None:
        ngroups = len(groups) + 1
        self.respelt_bit = len(groups)
        self.width = (ngroups + 63) // 64
        plain: dict[str, int] = {}
        stripped: dict[str, int] = {}
        for g, words in enumerate(groups):
            for w in words:
                self._add(plain, stripped, w, 1 << g)
        for w in respelt:
            self._add(plain, stripped, w, 1 << self.respelt_bit)
        self.plain = _Tables(plain, self.width)
        self.stripped = _Tables(stripped, self.width)
        self.npat = len(needs)
        self.needs = np.zeros((self.npat, self.width), dtype=np.uint64)
        for p, gs in enumerate(needs):
            m = 0
            for g in gs:
                m |= 1 << g
            for w in range(self.width):
                self.needs[p, w] = (m >> (64 * w)) & 0xFFFFFFFFFFFFFFFF
        # the needs as (pattern, word) entries, only the words where a pattern needs some group (most
        # patterns need groups of one word): a row has all of pattern p's groups when none of its
        # entries ``need_at[p] : need_at[p + 1]`` misses a bit (a pattern that needs nothing has one
        # empty entry)
        cols: list[int] = []
        masks: list[int] = []
        first: list[int] = []
        for p in range(self.npat):
            first.append(len(cols))
            for w in [w for w in range(self.width) if self.needs[p, w]] or [0]:
                cols.append(w)
                masks.append(int(self.needs[p, w]))
        self._need_cols = np.array(cols, dtype=np.int64)
        self._need_masks = np.array(masks, dtype=np.uint64)
        self._need_first = np.array(first, dtype=np.int64)
        # the patterns with more than r entries and their (r+1)-th entry, r = 1, 2, …
        counts = np.diff(np.append(self._need_first, len(cols)))
        self._need_more = [(np.flatnonzero(counts > r), self._need_first[counts > r] + r)
                           for r in range(1, int(counts.max(initial=1)))]
        self.kind = kind_lut()

    @staticmethod
    def _add(plain: dict[str, int], stripped: dict[str, int], w: str, bit: int) -> None:
        if not w:
            return
        plain[w] = plain.get(w, 0) | bit
        stripped[w] = stripped.get(w, 0) | bit
        s = _strip(w)
        if s and s != w:
            stripped[s] = stripped.get(s, 0) | bit

    def scan(self, codes: np.ndarray) -> tuple[np.ndarray, ...]:
        """For the folded text's code points: ``(starts, ends, evasive, lines, alive, respelt)``: lines
        ``[starts[i], ends[i])`` are all lines, ``evasive[i]`` says whether line i needs the
        length-changing normalisation, and ``alive[j]`` (a bool row per pattern) is set for the
        patterns that can fire in line ``lines[j]`` (only lines with some alive pattern or a
        respelt word are listed; a respelt line's row is all True, and ``respelt[j]`` is set)."""
        n = len(codes)
        nl = np.flatnonzero(codes == 10)
        starts = np.empty(len(nl) + 1, dtype=np.int64)
        starts[0] = 0
        starts[1:] = nl + 1
        ends = np.empty(len(nl) + 1, dtype=np.int64)
        ends[:-1] = nl
        ends[-1] = n
        nlines = len(starts)
        # evasions: an invisible character, or CJK + 1–3 separators + CJK (EVASION_RE)
        kind = self.kind[codes]
        evasive = np.zeros(nlines, dtype=bool)
        if n:
            pad = np.zeros(n + 4, dtype=np.uint8)
            pad[:n] = kind
            cjk = (pad & KIND_CJK) != 0
            sep = (pad & KIND_SEP) != 0
            m = n
            tail = cjk[2 : m + 2] | (sep[2 : m + 2] & (cjk[3 : m + 3] | (sep[3 : m + 3] & cjk[4 : m + 4])))
            ev = (cjk[:m] & sep[1 : m + 1] & tail) | ((pad[:m] & KIND_INVIS) != 0)
            evpos = np.flatnonzero(ev)
            if len(evpos):
                evasive[np.searchsorted(nl, evpos)] = True
        lm = np.zeros((nlines, self.width), dtype=np.uint64)
        # in chunks of whole lines, so that the temporaries stay in the processor's cache
        c0 = 0
        while c0 < n:
            if n - c0 <= _CHUNK or not len(nl):
                c1 = n  # the rest, or one line longer than a chunk
            else:
                c1 = int(nl[min(np.searchsorted(nl, c0 + _CHUNK), len(nl) - 1)]) + 1
            if c1 <= c0:
                c1 = n
            pos, masks = self.plain.hits(codes[c0:c1])
            if len(pos):
                pos += c0
                self._or_lines(lm, np.searchsorted(nl, pos), masks)
            c0 = c1
        if evasive.any():
            # the evasive lines with every separator and invisible character removed
            evl = np.flatnonzero(evasive)
            lens = ends[evl] - starts[evl] + 1  # with the line's newline (or the text's end)
            sel = np.repeat(starts[evl] - np.cumsum(lens) + lens, lens) + np.arange(int(lens.sum()))
            sel = sel[sel < n]
            keep = sel[(kind[sel] & (KIND_SEP | KIND_INVIS)) == 0]
            spos, smasks = self.stripped.hits(codes[keep])
            self._or_lines(lm, np.searchsorted(nl, keep[spos]), smasks)
        has = np.flatnonzero(lm.any(axis=1))
        sub = lm[has]
        # lines share few distinct group sets (boilerplate, repeated ads): test the needs once per set
        uniq, inverse = self._distinct(sub)
        if self.npat:
            missing = ~uniq[:, self._need_cols]
            missing &= self._need_masks
            has_all = missing == 0  # per entry
            alive_u = has_all[:, self._need_first]
            for pats, entries in self._need_more:
                alive_u[:, pats] &= has_all[:, entries]
        else:
            alive_u = np.ones((len(uniq), 0), dtype=bool)
        rw, rb = divmod(self.respelt_bit, 64)
        respelt_u = (uniq[:, rw] >> np.uint64(rb)) & np.uint64(1) != 0
        alive_u[respelt_u] = True
        keep_u = alive_u.any(axis=1)
        keep = keep_u[inverse]
        inv = inverse[keep]
        return starts, ends, evasive, has[keep], alive_u[inv], respelt_u[inv]

    @staticmethod
    def _distinct(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(distinct rows, index of each row's distinct row): by a 64-bit hash of each row, checked
        against the rows themselves (on a collision: every row on its own). A few rows (one page)
        are each their own: hashing them would cost more than it saves."""
        if len(rows) < _DISTINCT_MIN:
            return rows, np.arange(len(rows))
        h = np.zeros(len(rows), dtype=np.uint64)
        for w in range(rows.shape[1]):
            h *= np.uint64(0x9E3779B97F4A7C15)
            h ^= rows[:, w]
            h ^= h >> np.uint64(29)
        _, first, inverse = np.unique(h, return_index=True, return_inverse=True)
        uniq = rows[first]
        if not np.array_equal(uniq[inverse], rows):
            return rows, np.arange(len(rows))
        return uniq, inverse.reshape(-1)

    @staticmethod
    def _or_lines(lm: np.ndarray, lines: np.ndarray, masks: np.ndarray) -> None:
        if not len(lines):
            return
        cut = np.flatnonzero(lines[1:] != lines[:-1]) + 1
        first = np.empty(len(cut) + 1, dtype=np.int64)
        first[0] = 0
        first[1:] = cut
        lm[lines[first]] |= np.bitwise_or.reduceat(masks, first, axis=0)


# ---------------------------------------------------------------- literal words a regex needs

_MAX_SET = 64  # larger alternatives are not worth a group (and stop the product of a literal run)


def regex_groups(rx) -> list[tuple[str, ...]]:
    """Word groups that every match of ``rx`` contains a word of (each group: alternatives).

    Read off the parsed pattern: a required run of literals, literal alternations (``(暑假|寒假)``)
    and small literal classes (``[六日天]``) spells a finite set of strings, one of which is in any
    match; an alternation of non-literal branches needs the union of one group of each branch.
    Optional parts, classes with ranges, repeats and lookarounds add nothing. Patterns with flags
    that change literal matching (IGNORECASE) give no groups."""
    import re
    from re import _parser

    if rx.flags & re.IGNORECASE:
        return []
    try:
        tree = _parser.parse(rx.pattern, rx.flags)
    except Exception:  # pragma: no cover - the pattern compiled, so it parses
        return []
    groups = _seq_groups(list(tree.data))
    return [tuple(sorted(g)) for g in groups if g and "" not in g]


def _finite(item) -> set[str] | None:
    """The strings ``item`` (one parsed node) can match, if they are few and literal."""
    from re import _constants as c

    op, av = item
    if op is c.LITERAL:
        return {chr(av)}
    if op is c.IN:
        out = set()
        for o, a in av:
            if o is not c.LITERAL:
                return None
            out.add(chr(a))
        return out if len(out) <= _MAX_SET else None
    if op is c.SUBPATTERN:
        return _finite_seq(list(av[-1].data))
    if op is c.BRANCH:
        out = set()
        for alt in av[1]:
            s = _finite_seq(list(alt.data))
            if s is None:
                return None
            out |= s
            if len(out) > _MAX_SET:
                return None
        return out
    if op in (c.MAX_REPEAT, c.MIN_REPEAT) and av[0] == 0 and av[1] == 1:
        s = _finite_seq(list(av[2].data))
        return None if s is None else s | {""}
    return None


def _finite_seq(items) -> set[str] | None:
    out = {""}
    for it in items:
        s = _finite(it)
        if s is None:
            return None
        out = {a + b for a in out for b in s}
        if len(out) > _MAX_SET:
            return None
    return out


def _best(groups: list[set[str]]) -> set[str] | None:
    """The most selective of a branch's groups: longest shortest word, then fewest words."""
    groups = [g for g in groups if g and "" not in g]
    if not groups:
        return None
    return max(groups, key=lambda g: (min(len(w) for w in g), -len(g)))


def _seq_groups(items) -> list[set[str]]:
    """Groups of a sequence: maximal runs of finite items (their product), plus the groups of
    required non-finite items (sub-patterns, branches, repeats of at least one)."""
    from re import _constants as c

    groups: list[set[str]] = []
    run: set[str] | None = None

    def close() -> None:
        nonlocal run
        if run is not None:
            run.discard("")
            if run and all(run):
                groups.append(run)
        run = None

    for it in items:
        s = _finite(it)
        if s is not None and "" not in s:
            prod = {a + b for a in (run or {""}) for b in s}
            if len(prod) > _MAX_SET:
                close()
                prod = set(s)
            run = prod
            continue
        close()
        if s is not None:
            continue  # optional: ends the run, adds nothing
        op, av = it
        if op is c.SUBPATTERN:
            groups += _seq_groups(list(av[-1].data))
        elif op is c.BRANCH:
            per = [_best(_seq_groups(list(alt.data))) for alt in av[1]]
            if all(p is not None for p in per):
                union = set().union(*per)
                if len(union) <= 4 * _MAX_SET:
                    groups.append(union)
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT) and av[0] >= 1:
            groups += _seq_groups(list(av[2].data))
    close()
    return groups


# ---------------------------------------------------------------- first characters of a regex


def with_first_chars(rx):
    """``rx`` behind a lookahead for the characters its matches can start with: the same matches
    at the same places, but ``re`` rejects a start position with one class test instead of trying
    the whole pattern there (a pattern starting with an optional part or a repeat has no prefix
    that ``re`` can skip by). ``rx`` itself when the set is unknown or everything, or when ``re``
    has a prefix of its own to skip by (a literal, or a set of first characters: faster)."""
    import re
    from re import _compiler, _parser

    if rx.flags & (re.IGNORECASE | re.VERBOSE):
        return rx
    try:
        tree = _parser.parse(rx.pattern, rx.flags)
        # ``re`` finds a literal prefix or a prefix character set of the pattern itself, and then
        # skips start positions faster than the lookahead would
        if _compiler._get_literal_prefix(tree, rx.flags)[0] or _compiler._get_charset_prefix(tree, rx.flags):
            return rx
        first, nullable = _first_seq(list(tree.data))
    except Exception:  # pragma: no cover - the pattern compiled, so it parses
        return rx
    if first is None or nullable or not first:
        return rx
    try:
        return re.compile(f"(?=[{''.join(sorted(set(first)))}])(?:{rx.pattern})", rx.flags)
    except re.error:  # pragma: no cover
        return rx


_CATEGORY_CLASS = None


def _class_text(op, av) -> str | None:
    """One member of a character class as class text, or None (a negated class: anything)."""
    import re
    from re import _constants as c

    global _CATEGORY_CLASS
    if _CATEGORY_CLASS is None:
        _CATEGORY_CLASS = {
            c.CATEGORY_DIGIT: r"\d", c.CATEGORY_NOT_DIGIT: r"\D", c.CATEGORY_SPACE: r"\s",
            c.CATEGORY_NOT_SPACE: r"\S", c.CATEGORY_WORD: r"\w", c.CATEGORY_NOT_WORD: r"\W",
        }
    if op is c.LITERAL:
        return re.escape(chr(av)).replace("]", r"\]") if chr(av) not in "\\]^-" else "\\" + chr(av)
    if op is c.RANGE:
        lo, hi = av
        return f"{re.escape(chr(lo))}-{re.escape(chr(hi))}"
    if op is c.CATEGORY:
        return _CATEGORY_CLASS.get(av)
    return None


def _first_item(item) -> tuple[list[str] | None, bool]:
    """(class texts of the characters ``item`` can start with (None: any), can it match empty)."""
    from re import _constants as c

    op, av = item
    if op is c.LITERAL:
        return [_class_text(op, av)], False
    if op is c.IN:
        out = []
        for o, a in av:
            if o is c.NEGATE:
                return None, False
            t = _class_text(o, a)
            if t is None:
                return None, False
            out.append(t)
        return out, False
    if op is c.SUBPATTERN:
        return _first_seq(list(av[-1].data))
    if op is c.BRANCH:
        out: list[str] = []
        nullable = False
        for alt in av[1]:
            f, n = _first_seq(list(alt.data))
            if f is None:
                return None, False
            out += f
            nullable = nullable or n
        return out, nullable
    if op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
        f, n = _first_seq(list(av[2].data))
        return f, n or av[0] == 0
    if op in (c.AT, c.ASSERT, c.ASSERT_NOT):
        return [], True  # zero width: the next item gives the first character
    return None, False  # ANY, group references, conditionals…


def _first_seq(items) -> tuple[list[str] | None, bool]:
    out: list[str] = []
    for it in items:
        f, n = _first_item(it)
        if f is None:
            return None, False
        out += f
        if not n:
            return out, False
    return out, True


# ---------------------------------------------------------------- two symbols per character


class Spelling:
    """Texts spelt with two symbols per character, for an Aho–Corasick automaton of ``words``.

    pyahocorasick finds a node's child by a linear scan of its children, so a scan costs about
    the number of distinct first characters of the words per text character, and grows with the
    rule packs. Spelt as (high, low) halves of a character id, with the two halves drawn from
    disjoint symbol ranges (so a word can only match at a character boundary), no node has more
    than about √(alphabet) children. Characters outside the words' alphabet share one spelling
    that no word uses. A match ending at symbol ``i`` ends at character ``i // 2``."""

    def __init__(self, words: Iterable[str]) -> None:
        words = list(words)
        # word-initial characters get the lowest ids: the root's children then fall in few blocks
        heads = sorted({w[0] for w in words if w})
        chars = heads + sorted({c for w in words for c in w} - set(heads))
        size = len(chars) + 1
        self.base = base = max(2, int(size**0.5) + 1)
        dtype = np.uint16 if size < (1 << 16) else np.uint32
        self.lut = np.zeros(0x110000, dtype=dtype)
        if chars:
            self.lut[np.array([ord(c) for c in chars], dtype=np.int64)] = np.arange(1, size, dtype=dtype)
        ids = np.arange(size, dtype=np.uint32)
        self.hi = (0x100 + ids // base).astype(np.uint16)
        self.lo = (0x100 + base + 1 + ids % base).astype(np.uint16)
        self._ids = {c: i + 1 for i, c in enumerate(chars)}

    def other(self) -> str:
        """The spelling of every character outside the alphabet."""
        return chr(self.hi[0]) + chr(self.lo[0])

    def word(self, w: str) -> str:
        out = []
        for c in w:
            i = self._ids[c]
            out.append(chr(self.hi[i]) + chr(self.lo[i]))
        return "".join(out)

    def texts(self, texts: list[str]) -> list[str]:
        """Each text spelt (one numpy pass over them all)."""
        if not texts:
            return []
        joined = "\n".join(texts)
        ids = self.lut[np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)]
        sym = np.empty(2 * len(ids), dtype=np.uint16)
        sym[0::2] = self.hi[ids]
        sym[1::2] = self.lo[ids]
        spelt = sym.tobytes().decode("utf-16-le")
        out = []
        pos = 0
        for t in texts:
            out.append(spelt[2 * pos : 2 * (pos + len(t))])
            pos += len(t) + 1
        return out
