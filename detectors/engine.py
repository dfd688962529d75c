"""The rule engine: YAML rule packs → a vectorised line gate and an Aho–Corasick automaton of
literal anchors → rule evaluation (regex, structured checks, context and negation scoring) only
around anchor hits in the lines where a rule can fire.

Rules are written against *concepts*: the word lists of every ``_*.yaml`` file in the rules
directory (``_lexicon.yaml``: shared cues and evasive spellings; ``_concepts.yaml``: lexicons of
interchangeable words). A rule names a list as ``$name`` in anchors, ``require`` and context
words, and as ``{$name}`` inside a regex (an alternation of its words), so the structure of a
category ("condition of failure … refund") is written once and every combination of the words
fires. Explanations and titles are Simplified Chinese (they go into official reports).

Flow of ``Detector.detect(text)`` (each line on its own: windows and context never cross a line):

1. fold the whole text (a length-preserving character map: simplified, half-width, lower case)
   with numpy;
2. the line gate (``detectors.gate``), vectorised over the whole text: which lines have an
   evasion, and for each line which (rule, pattern) pairs can fire at all, from the word groups
   each pattern needs (anchors, ``require`` groups, literals its regex cannot match without, a
   score-raising context when the base score alone is below the threshold). Most lines stop here;
3. the lines left, once per distinct line (memoised by content): lines with an evasion are
   normalised (invisible characters and separators removed, evasive spellings replaced; an offset
   map remembers where each character came from), then each live pattern's regex (and its
   check's cheap gate) must match somewhere in the line;
4. the anchor automaton over the line; for each hit of a live pattern, its regex searched in the
   sentence around the hit (or the anchor itself), ``require``, ``exclusions`` and ``check``
   decide whether there is a candidate; ``context`` words and the shared negation/reporting cues
   move its score (stopping as soon as it can no longer reach the threshold);
5. candidates scoring at least the threshold become findings, mapped back to the original
   offsets; overlapping findings of one category are merged.

Every gate is a necessary condition of the full evaluation: the result is the same as evaluating
every line in full (``tests/test_detectors_gate.py`` checks that).

Nothing here performs I/O at detect time; rule files are read once, at construction.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from operator import itemgetter
from pathlib import Path

import ahocorasick
import numpy as np
import yaml

from detectors.checks import CHECK_BOOST, CHECKS, GATES, Candidate
from detectors.gate import LineGate, Spelling, regex_groups, with_first_chars
from detectors.model import CATEGORIES, SEVERITIES, Finding
from detectors.normalize import EVASION_RE, Normalized, Normalizer, char_fold, fold, fold_codes

RULES_DIR = Path(__file__).with_name("rules")
LEXICON = "_lexicon.yaml"
THRESHOLD = 0.5
SENT_CHARS = "。!?;\n…"
CLAUSE_CHARS = SENT_CHARS + ",，、"
SCOPE_ZH = {"sentence": "同一句中", "before": "该词之前", "after": "该词之后", "clause": "同一分句中", "near": "附近",
            "page": "同一页面（文本）中"}
MAX_REACH = 80  # characters each side of a hit that make up its sentence window
NEAR = 100
NEGATORS = "不无非没未勿禁"
NEGATOR_PENALTY = 0.6  # a negator character right before the term
SMALL_TEXT = 1500  # characters: shorter texts skip the vectorised line gate (its fixed cost dominates)


class RuleError(ValueError):
    """A rule pack is broken; the message names the file, the rule and the field."""


@dataclass(frozen=True)
class Basis:
    document: str
    article: str
    text: str

    def __str__(self) -> str:
        art = f" {self.article}" if self.article else ""
        return f"{self.document}{art}：“{self.text}”"


@dataclass(frozen=True)
class Pattern:
    name: str
    anchors: tuple[str, ...]
    regex: re.Pattern[str] | None
    score: float
    named: bool = False  # ``name`` was given in the pack (a Chinese description, shown in explanations)

    @property
    def kind(self) -> str:
        return "结构模式" if self.regex is not None else "关键词"


@dataclass(frozen=True)
class Context:
    words: tuple[str, ...]
    delta: float
    scope: str  # sentence | before | after | clause | near | page (the whole text; lowers only)
    unless: tuple[str, ...]
    label: str


@dataclass(frozen=True)
class Rule:
    id: str
    category: str
    severity: str
    title: str
    basis: Basis
    patterns: tuple[Pattern, ...]
    require: tuple[tuple[str, ...], ...]
    require_scope: str
    context: tuple[Context, ...]
    exclusions: tuple[re.Pattern[str], ...]
    check: str | None
    negatable: bool
    positive: tuple[str, ...]
    negative: tuple[str, ...]
    source: str = ""


@dataclass
class Lexicon:
    vocab: dict[str, tuple[str, ...]] = field(default_factory=dict)
    cues: dict[str, tuple[tuple[str, ...], float]] = field(default_factory=dict)
    cue_patterns: dict[str, tuple[re.Pattern[str], float]] = field(default_factory=dict)
    substitutions: dict[str, str] = field(default_factory=dict)
    codes: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------- loading


def _err(src: str, rid: str | None, fld: str, msg: str) -> RuleError:
    who = f"rule {rid!r}" if rid else "pack"
    return RuleError(f"{src}: {who}: field {fld!r}: {msg}")


def _read_yaml(path: Path) -> object:
    try:
        # libyaml's loader when PyYAML has it (same documents, ~8× faster to load the packs)
        return yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as e:
        raise RuleError(f"{path}: not valid YAML: {e}") from e
    except OSError as e:
        raise RuleError(f"{path}: cannot read: {e}") from e


def lexicon_files(rules_dir: Path) -> list[Path]:
    """The word-list files of a rules directory: every ``_*.yaml`` (``_lexicon.yaml`` with the shared
    cues and spellings, ``_concepts.yaml`` with the concept word lists); the package's own when the
    directory has none."""
    files = sorted(Path(rules_dir).glob("_*.yaml"), key=lambda p: (p.name != LEXICON, p.name))
    return files or sorted(RULES_DIR.glob("_*.yaml"), key=lambda p: (p.name != LEXICON, p.name))


def load_lexicons(paths: list[Path]) -> Lexicon:
    """One lexicon from several files (a name defined twice is an error naming both files)."""
    lex = Lexicon()
    seen: dict[str, Path] = {}
    for path in paths:
        part = load_lexicon(path, lex)
        for kind in ("vocab", "cues", "cue_patterns"):
            for name in getattr(part, kind):
                key = f"{kind}:{name}"
                if key in seen:
                    raise RuleError(f"{path}: {kind} {name!r} is already defined in {seen[key]}")
                seen[key] = path
        lex.vocab.update(part.vocab)
        lex.cues.update(part.cues)
        lex.cue_patterns.update(part.cue_patterns)
        lex.substitutions.update(part.substitutions)
        lex.codes.update(part.codes)
    return lex


def load_lexicon(path: Path, base: Lexicon | None = None) -> Lexicon:
    """One word-list file; ``$name`` inside a list refers to a list defined above it or in ``base``."""
    data = _read_yaml(path) or {}
    if not isinstance(data, dict):
        raise RuleError(f"{path}: expected a mapping")
    lex = Lexicon()
    for name, words in (data.get("vocab") or {}).items():
        if not isinstance(words, list) or not all(isinstance(w, str | int) for w in words):
            raise RuleError(f"{path}: vocab {name!r}: expected a list of words")
        out: list[str] = []
        for w in words:
            w = str(w)
            if w.startswith("$"):  # a concept built from others: "$subject_content"
                known = lex.vocab.get(w[1:]) or (base.vocab.get(w[1:]) if base else None)
                if known is None:
                    raise RuleError(f"{path}: vocab {name!r}: unknown word list {w!r} (define it above)")
                out.extend(known)
            else:
                out.append(char_fold(w))
        lex.vocab[name] = tuple(dict.fromkeys(out))
    for name, spec in (data.get("cues") or {}).items():
        if isinstance(spec, dict) and isinstance(spec.get("regex"), str):
            try:
                lex.cue_patterns[name] = (re.compile(spec["regex"]), float(spec.get("delta", -0.5)))
            except re.error as e:
                raise RuleError(f"{path}: cues {name!r}: field 'regex': {e}") from e
            continue
        if not isinstance(spec, dict) or not isinstance(spec.get("words"), list):
            raise RuleError(f"{path}: cues {name!r}: expected a mapping with 'words' (or 'regex') and 'delta'")
        lex.cues[name] = (tuple(char_fold(str(w)) for w in spec["words"]), float(spec.get("delta", -0.5)))
    lex.substitutions = {str(k): str(v) for k, v in (data.get("substitutions") or {}).items()}
    lex.codes = {str(k): str(v) for k, v in (data.get("codes") or {}).items()}
    return lex


def _words(src: str, rid: str, fld: str, value: object, lex: Lexicon) -> tuple[str, ...]:
    if isinstance(value, str | int):
        value = [value]
    if not isinstance(value, list) or not value:
        raise _err(src, rid, fld, "expected a non-empty list of words")
    out: list[str] = []
    for w in value:
        if not isinstance(w, str | int) or str(w) == "":
            raise _err(src, rid, fld, f"expected words, got {w!r}")
        w = str(w)
        if w.startswith("$"):
            if w[1:] not in lex.vocab:
                raise _err(src, rid, fld, f"unknown word list {w!r} (known: {sorted(lex.vocab)})")
            out.extend(lex.vocab[w[1:]])
        else:
            out.append(char_fold(w))
    return tuple(dict.fromkeys(out))


_CONCEPT_REF = re.compile(r"\{\$([A-Za-z_][A-Za-z0-9_]*)\}")


def _regex(src: str, rid: str, fld: str, value: object, lex: Lexicon | None = None) -> re.Pattern[str]:
    """A rule's regular expression; ``{$name}`` stands for the words of the concept ``name`` (an
    alternation, longest word first), so structure is written once and the words stay data."""
    if not isinstance(value, str) or not value:
        raise _err(src, rid, fld, "expected a non-empty regular expression")

    def concept(m: re.Match[str]) -> str:
        name = m.group(1)
        if lex is None or name not in lex.vocab:
            raise _err(src, rid, fld, f"unknown word list {{${name}}} (known: {sorted(lex.vocab) if lex else []})")
        words = sorted(set(lex.vocab[name]), key=len, reverse=True)
        return "(?:" + "|".join(re.escape(w) for w in words) + ")"

    value = _CONCEPT_REF.sub(concept, value)
    try:
        return re.compile(value)
    except re.error as e:
        raise _err(src, rid, fld, f"bad regex {value!r}: {e}") from e


def _number(src: str, rid: str, fld: str, value: object, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise _err(src, rid, fld, f"expected a number between {lo} and {hi}, got {value!r}")
    return float(value)


RULE_FIELDS = {
    "id", "category", "severity", "title", "basis", "patterns", "require", "require_scope", "context",
    "exclusions", "check", "negatable", "examples", "score",
}
SCOPES = ("sentence", "before", "after", "clause", "near", "page")


def _rule(src: str, i: int, raw: object, lex: Lexicon) -> Rule:
    if not isinstance(raw, dict):
        raise RuleError(f"{src}: rule #{i}: expected a mapping")
    rid = raw.get("id")
    if not isinstance(rid, str) or not rid:
        raise RuleError(f"{src}: rule #{i}: field 'id': missing or not a string")
    unknown = set(raw) - RULE_FIELDS
    if unknown:
        raise _err(src, rid, sorted(unknown)[0], f"unknown field (allowed: {sorted(RULE_FIELDS)})")
    cat = raw.get("category")
    if cat not in CATEGORIES:
        raise _err(src, rid, "category", f"{cat!r} is not one of {CATEGORIES}")
    sev = raw.get("severity", "medium")
    if sev not in SEVERITIES:
        raise _err(src, rid, "severity", f"{sev!r} is not one of {SEVERITIES}")
    b = raw.get("basis")
    if not isinstance(b, dict):
        raise _err(src, rid, "basis", "expected a mapping with document, article and text")
    for k in ("document", "text"):
        if not isinstance(b.get(k), str) or not b[k].strip():
            raise _err(src, rid, f"basis.{k}", "missing")
    basis = Basis(b["document"].strip(), str(b.get("article") or "").strip(), b["text"].strip())
    pats = raw.get("patterns")
    if not isinstance(pats, list) or not pats:
        raise _err(src, rid, "patterns", "expected a non-empty list")
    default_score = _number(src, rid, "score", raw.get("score", 0.7), 0, 1)
    patterns = []
    for j, p in enumerate(pats):
        fld = f"patterns[{j}]"
        if isinstance(p, str):
            p = {"anchors": [p]}
        if not isinstance(p, dict):
            raise _err(src, rid, fld, "expected a word or a mapping with anchors/regex/score")
        extra = set(p) - {"name", "anchors", "regex", "score"}
        if extra:
            raise _err(src, rid, f"{fld}.{sorted(extra)[0]}", "unknown field")
        if "anchors" not in p:
            raise _err(src, rid, f"{fld}.anchors", "missing (literal words the regex needs nearby)")
        anchors = _words(src, rid, f"{fld}.anchors", p["anchors"], lex)
        rx = _regex(src, rid, f"{fld}.regex", p["regex"], lex) if "regex" in p else None
        score = _number(src, rid, f"{fld}.score", p.get("score", default_score), 0, 1)
        name = str(p.get("name") or (p["regex"] if rx else "/".join(anchors[:4])))
        patterns.append(Pattern(name, anchors, rx, score, bool(p.get("name"))))
    require = []
    req = raw.get("require", [])
    if not isinstance(req, list):
        raise _err(src, rid, "require", "expected a list of word groups")
    for j, group in enumerate(req):
        require.append(_words(src, rid, f"require[{j}]", group, lex))
    rscope = raw.get("require_scope", "sentence")
    if rscope not in SCOPES:
        raise _err(src, rid, "require_scope", f"{rscope!r} is not one of {SCOPES}")
    contexts = []
    ctx = raw.get("context", [])
    if not isinstance(ctx, list):
        raise _err(src, rid, "context", "expected a list of {words, delta, scope, unless}")
    for j, c in enumerate(ctx):
        fld = f"context[{j}]"
        if not isinstance(c, dict) or "words" not in c or "delta" not in c:
            raise _err(src, rid, fld, "expected a mapping with 'words' and 'delta'")
        scope = c.get("scope", "sentence")
        if scope not in SCOPES:
            raise _err(src, rid, f"{fld}.scope", f"{scope!r} is not one of {SCOPES}")
        unless = _words(src, rid, f"{fld}.unless", c["unless"], lex) if c.get("unless") else ()
        if scope == "page" and not float(c["delta"]) < 0:
            raise _err(src, rid, f"{fld}.delta", "a page context can only lower a score (read after the lines)")
        contexts.append(
            Context(
                _words(src, rid, f"{fld}.words", c["words"], lex),
                _number(src, rid, f"{fld}.delta", c["delta"], -1, 1),
                scope,
                unless,
                str(c.get("label") or ""),
            )
        )
    exc = raw.get("exclusions", [])
    if not isinstance(exc, list):
        raise _err(src, rid, "exclusions", "expected a list of regular expressions")
    exclusions = tuple(_regex(src, rid, f"exclusions[{j}]", x, lex) for j, x in enumerate(exc))
    chk = raw.get("check")
    if chk is not None and chk not in CHECKS:
        raise _err(src, rid, "check", f"unknown check {chk!r} (known: {sorted(CHECKS)})")
    ex = raw.get("examples")
    if not isinstance(ex, dict) or not ex.get("positive"):
        raise _err(src, rid, "examples", "expected a mapping with a non-empty 'positive' list (and 'negative')")
    for k in ("positive", "negative"):
        v = ex.get(k, [])
        if not isinstance(v, list) or not all(isinstance(s, str) and s for s in v):
            raise _err(src, rid, f"examples.{k}", "expected a list of non-empty strings")
    return Rule(
        id=rid,
        category=cat,
        severity=sev,
        title=str(raw.get("title") or rid),
        basis=basis,
        patterns=tuple(patterns),
        require=tuple(require),
        require_scope=rscope,
        context=tuple(contexts),
        exclusions=exclusions,
        check=chk,
        negatable=bool(raw.get("negatable", True)),
        positive=tuple(ex.get("positive", [])),
        negative=tuple(ex.get("negative", []) or []),
        source=src,
    )


def load_rules(path: Path, lexicon: Lexicon | None = None) -> list[Rule]:
    """Load and validate one rule pack. Raises :class:`RuleError` naming file, rule and field."""
    path = Path(path)
    if lexicon is None:
        lexicon = load_lexicons(lexicon_files(path.parent))
    data = _read_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise RuleError(f"{path}: expected a mapping with a 'rules' list")
    rules = [_rule(str(path), i, raw, lexicon) for i, raw in enumerate(data["rules"])]
    seen: set[str] = set()
    for r in rules:
        if r.id in seen:
            raise _err(str(path), r.id, "id", "duplicate rule id")
        seen.add(r.id)
    return rules


# ---------------------------------------------------------------------------- detection


_SENT_RE = re.compile("[" + re.escape(SENT_CHARS) + "]")
_CLAUSE_RE = re.compile("[" + re.escape(CLAUSE_CHARS) + "]")
_LEFT_SENT_RE = re.compile("[" + re.escape(SENT_CHARS) + "][^" + re.escape(SENT_CHARS) + "]*$")
_LEFT_COMMA_RE = re.compile("[,，:：][^,，:：]*$")
_LEFT_CLAUSE_RE = re.compile("[" + re.escape(CLAUSE_CHARS) + "][^" + re.escape(CLAUSE_CHARS) + "]*$")
_LEFT_STOP_RE = re.compile("[。!?\n…][^。!?\n…]*$")  # the last full stop: semicolons do not end a list
LIST_REACH = 240  # characters back from a semicolon list's item to its heading


def _sentence(t: str, s: int, e: int, clause: bool = False) -> tuple[int, int]:
    """The sentence (or clause) around ``t[s:e]``, at most MAX_REACH characters each side."""
    lo = max(0, s - MAX_REACH)
    left_re, right_re = (_LEFT_CLAUSE_RE, _CLAUSE_RE) if clause else (_LEFT_SENT_RE, _SENT_RE)
    m = left_re.search(t, lo, s)
    ss = m.start() + 1 if m else lo
    m = right_re.search(t, e, e + MAX_REACH)
    return ss, (m.start() if m else min(len(t), e + MAX_REACH))


QUOTE_OPEN = "“‘「『《\"'"
QUOTE_CLOSE = "”’」』》\"'"
QUOTE_REACH = 12  # characters between the term and its quotes


def _quoted(t: str, a: int, b: int, ss: int, se: int) -> tuple[int, int] | None:
    """``(open, close)``: offsets of the quotes around ``t[a:b]`` when the term sits inside a quoted
    phrase of its sentence (“保证通过考试”), else None."""
    lo = max(ss, a - QUOTE_REACH)
    qs = -1
    for i in range(a - 1, lo - 1, -1):
        c = t[i]
        if c in QUOTE_CLOSE and c not in QUOTE_OPEN:
            return None
        if c in QUOTE_OPEN:
            qs = i
            break
        if c in CLAUSE_CHARS:
            return None
    if qs < 0:
        return None
    for i in range(b, min(se, b + QUOTE_REACH)):
        c = t[i]
        if c in QUOTE_CLOSE:
            return qs, i
        if c in CLAUSE_CHARS or (c in QUOTE_OPEN and c not in QUOTE_CLOSE):
            return None
    return None


def _after_quotes(t: str, qe: int, se: int) -> str:
    """What follows a closing quote, past any further quoted items of a list (“保过”“包过”、“押题”等)."""
    i = qe + 1
    while i < se:
        c = t[i]
        if c in "、,，/ 和及与或":
            i += 1
            continue
        if c in QUOTE_OPEN:
            j = i + 1
            while j < se and j - i <= 20 and t[j] not in QUOTE_CLOSE:
                j += 1
            if j >= se or t[j] not in QUOTE_CLOSE:
                break
            i = j + 1
            continue
        break
    return t[i : i + 6]


class _Words:
    """A word list as one regex alternation (longest word first): ``first`` says in C whether a word
    of the list is in a region (the common answer is no) and names the first one found there."""

    __slots__ = ("words", "rx")

    def __init__(self, words: tuple[str, ...]) -> None:
        self.words = words
        alts = sorted(dict.fromkeys(words), key=len, reverse=True)
        self.rx = re.compile("|".join(re.escape(w) for w in alts)) if alts else None

    def first(self, region: str) -> str | None:
        """The first word of the list found in ``region`` (leftmost; the longest one there)."""
        if self.rx is None:
            return None
        m = self.rx.search(region)
        return m.group() if m is not None else None


@dataclass(frozen=True)
class _Compiled:
    """A rule's word lists as :class:`_Words`, and per context the most the contexts from it on can
    still add (to stop evaluating a candidate that can no longer reach the threshold)."""

    require: tuple[_Words, ...]
    context: tuple[tuple[Context, _Words, _Words | None, str, str], ...]  # …, its note before and after the word
    rest_up: tuple[float, ...]


@dataclass
class _Cand:
    rule: Rule
    start: int
    end: int
    score: float
    notes: list[str]
    matched: str = ""  # the normalised words (for the "also matched" notes)
    ns: int = -1  # the span in the normalised line (clusters are formed there: an invisible
    ne: int = -1  # character between two touching matches must not split them)


class Detector:
    """Loads every ``*.yaml`` rule pack in ``rules_dir`` (plus ``_lexicon.yaml``) once."""

    def __init__(self, rules_dir: Path | str = RULES_DIR, threshold: float = THRESHOLD) -> None:
        rules_dir = Path(rules_dir)
        self.lexicon = load_lexicons(lexicon_files(rules_dir))
        self.threshold = threshold
        self.rules: list[Rule] = []
        ids: dict[str, str] = {}
        for path in sorted(rules_dir.glob("*.yaml")):
            if path.name.startswith("_"):
                continue
            for r in load_rules(path, self.lexicon):
                if r.id in ids:
                    raise _err(str(path), r.id, "id", f"duplicate rule id (also in {ids[r.id]})")
                ids[r.id] = str(path)
                self.rules.append(r)
        self.normalizer = Normalizer(self.lexicon.substitutions, self.lexicon.codes)
        self._online = _Words(self.lexicon.vocab.get("online", ()))
        self._cues = {name: (_Words(words), delta) for name, (words, delta) in self.lexicon.cues.items()}
        self._cue_patterns = self.lexicon.cue_patterns
        # the least a negation before the term costs (the NEGATORS character or a negation_sentence word)
        ns_words, ns_delta = self._cues.get("negation_sentence", (_Words(()), 0.0))
        self._negation_sentence = ns_words
        self._negated = min(NEGATOR_PENALTY, -ns_delta) if ns_delta < 0 else 0.0
        # the most the shared cues can add (they lower scores: normally 0)
        self._cue_up = sum(max(0.0, d) for _, d in self.lexicon.cues.values()) + sum(
            max(0.0, d) for _, d in self.lexicon.cue_patterns.values())
        self._compiled: list[_Compiled] = []
        # page contexts are read after the lines, on the whole text (a line's findings are memoised
        # whatever page it is on): rule id -> its page contexts
        self._page_contexts: dict[str, tuple[tuple[Context, _Words, _Words | None, str, str], ...]] = {}
        for r in self.rules:
            line_ctx = [c for c in r.context if c.scope != "page"]
            ups = [max(0.0, c.delta) for c in line_ctx]
            self._compiled.append(_Compiled(
                tuple(_Words(g) for g in r.require),
                tuple((c, _Words(c.words), _Words(c.unless) if c.unless else None, *_context_note(c))
                      for c in line_ctx),
                tuple(sum(ups[i:]) for i in range(len(ups) + 1)),
            ))
            page_ctx = tuple((c, _Words(c.words), _Words(c.unless) if c.unless else None, *_context_note(c))
                             for c in r.context if c.scope == "page")
            if page_ctx:
                self._page_contexts[r.id] = page_ctx
        self._automaton = ahocorasick.Automaton()
        table: dict[str, list[tuple[int, int]]] = {}
        for ri, r in enumerate(self.rules):
            for pi, p in enumerate(r.patterns):
                for a in p.anchors:
                    table.setdefault(a, []).append((ri, pi))
        # (rule, pattern) pair j ↔ bit j: a hit's value is (length, targets, bits of its targets)
        self._pairs: list[tuple[int, int]] = [(ri, pi) for ri, r in enumerate(self.rules) for pi in range(len(r.patterns))]
        self._bit = bit = {pair: 1 << j for j, pair in enumerate(self._pairs)}
        # the automaton reads texts spelt two symbols per character (see ``Spelling``); a second
        # one reads plain text, for short texts and the odd respelt line
        self._spelling = Spelling(table)
        # first, a word that never matches (its second symbol is no character's) makes the spelling
        # of all other characters the root's first child: found at the first comparison
        self._automaton.add_word(self._spelling.other() + "\uffff", (0, (), 0))
        self._plain_automaton = ahocorasick.Automaton()
        for a, targets in table.items():
            tg = tuple((ri, pi, bit[ri, pi]) for ri, pi in targets)
            mask = 0
            for _, _, b in tg:
                mask |= b
            self._automaton.add_word(self._spelling.word(a), (len(a), tg, mask))
            self._plain_automaton.add_word(a, (len(a), tg, mask))
        if table:
            self._plain_automaton.make_automaton()
        if table:
            self._automaton.make_automaton()
        self._empty = not table
        # line gates: a rule's ``require`` groups must each have a word in the line, and a regex
        # pattern must match somewhere in the line, before any hit of it is evaluated in detail
        groups: dict[tuple[str, ...], int] = {}
        self._req_ids: list[tuple[int, ...]] = []
        for r in self.rules:
            self._req_ids.append(tuple(groups.setdefault(g, len(groups)) for g in r.require))
        # one automaton over every require word says which groups a line satisfies
        self._req_automaton = None
        word_groups: dict[str, set[int]] = {}
        for g, gi in groups.items():
            for w in g:
                word_groups.setdefault(w, set()).add(gi)
        if word_groups:
            self._req_automaton = ahocorasick.Automaton()
            for w, gis in word_groups.items():
                self._req_automaton.add_word(w, frozenset(gis))
            self._req_automaton.make_automaton()
        self._line_gate = self._build_gate()
        # each pattern regex as run: behind a lookahead for its first characters (same matches)
        self._rx: list[list[re.Pattern[str] | None]] = [
            [with_first_chars(p.regex) if p.regex is not None else None for p in r.patterns] for r in self.rules
        ]
        # each check's gate, remembering its answer per matched words (the same times and prices
        # recur on every page: "晚8点", "12节课")
        self._check_gates = {name: _remembered(g) for name, g in GATES.items()}
        self._regex_gates = [
            (j, self._rx[ri][pi], self._check_gates.get(self.rules[ri].check) if self.rules[ri].check else None)
            for j, (ri, pi) in enumerate(self._pairs)
            if self.rules[ri].patterns[pi].regex is not None
        ]
        self._regex_gate_cols = np.array([j for j, _, _ in self._regex_gates], dtype=np.int64)
        self._line_cache: dict[str, tuple[tuple, ...]] = {}  # folded line → its merged findings
        self._heads = {r.id: (f"{r.title}（规则 {r.id}）", f"违反{r.basis}", str(r.basis)) for r in self.rules}

    def _build_gate(self) -> LineGate:
        """The vectorised line gate: per pattern, the word groups a line must have for it to fire.

        Its anchors; every ``require`` group of its rule; and when the base score (plus the most a
        check may add) stays below the threshold, a word of one of the rule's score-raising
        contexts. A pattern that cannot reach the threshold even with all of them needs a group
        without words (it is never alive). Negative contexts, cues and exclusions only lower or
        reject, so they never make a line needed."""
        groups: dict[tuple[str, ...], int] = {}
        needs: list[list[int]] = []
        eps = 1e-9
        for ri, pi in self._pairs:
            r = self.rules[ri]
            p = r.patterns[pi]
            need = [groups.setdefault(_minimal(p.anchors), len(groups))]
            need += [groups.setdefault(_minimal(g), len(groups)) for g in r.require]
            if p.regex is not None:
                need += [groups.setdefault(g, len(groups)) for g in regex_groups(p.regex)]
            base = p.score + (CHECK_BOOST.get(r.check, 0.0) if r.check else 0.0)
            raise_words = _minimal(tuple(dict.fromkeys(w for c in r.context if c.delta > 0 for w in c.words)))
            top = base + sum(c.delta for c in r.context if c.delta > 0)
            if top < self.threshold - eps:
                need.append(groups.setdefault((), len(groups)))
            elif base < self.threshold - eps:
                need.append(groups.setdefault(raise_words, len(groups)))
            needs.append(need)
        respelt = [*self.normalizer.subs, *self.normalizer.codes]
        return LineGate(list(groups), needs, respelt)

    # -- one candidate -------------------------------------------------------------------------

    def _evaluate(
        self, ri: int, pat: Pattern, t: str, a: int, b: int, ss: int, se: int, hs: int, he: int
    ) -> _Cand | None:
        """The candidate of rule ``ri``'s pattern on ``t[a:b]``; None when it is rejected or when
        its score can no longer reach the threshold (contexts and cues that could still raise it
        are counted; the ones that lower it are not needed to know that)."""
        rule = self.rules[ri]
        comp = self._compiled[ri]
        if rule.exclusions:
            sent = t[ss:se]
            for x in rule.exclusions:
                if x.search(sent):
                    return None
        if comp.require:
            region = self._region(rule.require_scope, t, a, b, ss, se)
            for group in comp.require:
                if group.first(region) is None:
                    return None
        score = pat.score
        notes: list[str] = []  # the first note, what matched, is put in front once the candidate stands
        if rule.check:
            online = self._online.first(t[max(0, a - NEAR) : b + NEAR]) is not None
            try:
                res = CHECKS[rule.check](Candidate(t, a, b, ss, se, online))
            except Exception:  # a check must never break detection
                res = None
            if res is None:
                return None
            delta, note = res
            score += min(delta, CHECK_BOOST.get(rule.check, 0.0))
            notes.append(f"核查：{note}")
        threshold = self.threshold - 1e-9
        cue_up = self._cue_up if rule.negatable else 0.0
        rest_up = comp.rest_up
        # a negation right before the term, or a prohibition earlier in its sentence (policy prose:
        # "不得……"), costs at least ``_negated`` in ``_cues_adjust``: when even every raising context
        # cannot make up for it, the contexts need not be read
        if rule.negatable and self._negated:
            na = min(hs, b)
            if (na > ss and t[na - 1] in NEGATORS) or self._negation_sentence.first(t[ss:na]) is not None:
                if score + (rest_up[0] if rest_up else 0.0) + cue_up - self._negated < threshold:
                    return None
        for i, (c, words, unless, head, tail) in enumerate(comp.context):
            if score + rest_up[i] + cue_up < threshold:
                return None
            region = self._region(c.scope, t, a, b, ss, se)
            w = words.first(region)
            # "unless" words cancel the context only inside the term's own sentence: a subject named
            # in a neighbouring sentence does not make this weekend art class a subject class
            if w is None or (unless is not None and unless.first(region if c.scope != "near" else t[ss:se]) is not None):
                continue
            score += c.delta
            notes.append(head + w + tail)
        if score + cue_up < threshold:
            return None
        if rule.negatable:
            score = self._cues_adjust(t, min(hs, b), max(he, a), ss, se, score, notes)
            if score < threshold:  # the caller drops it: no need to word what matched
                return _Cand(rule, a, b, score, notes)
        notes.insert(0, f"{pat.kind}“{pat.name}”命中“{t[a:b]}”（基础分 {pat.score:.2f}）" if pat.named
                     else f"{pat.kind}命中“{t[a:b]}”（基础分 {pat.score:.2f}）")
        return _Cand(rule, a, b, score, notes)

    def _region(self, scope: str, t: str, a: int, b: int, ss: int, se: int) -> str:
        if scope == "sentence":
            return t[ss:se]
        if scope == "before":
            return t[ss:a]
        if scope == "after":
            return t[b:se]
        if scope == "near":
            return t[max(0, a - NEAR) : b + NEAR]
        cs, ce = _sentence(t, a, b, True)
        return t[max(cs, ss) : min(ce, se)]

    def _cues_adjust(self, t: str, a: int, b: int, ss: int, se: int, score: float, notes: list[str]) -> float:
        """Shared negation/reporting cues around the anchor ``t[a:b]`` in its sentence ``t[ss:se]``."""
        before = t[ss:a]
        cues = self._cues
        # every cue only lowers the score: once it is below the threshold the candidate is dropped,
        # so the remaining cues need not be read
        low = self.threshold - 1e-9
        if a > ss and t[a - 1] in NEGATORS:
            score -= NEGATOR_PENALTY
            notes.append(f"该词前紧接否定词“{t[a - 1]}”，减分 {NEGATOR_PENALTY:.2f}")
        if score < low:
            return score
        cs, ce = _sentence(t, a, b, True)  # the clause around the term
        if "negation_after" in cues:
            words, delta = cues["negation_after"]
            w = words.first(t[b : min(ce, se)])
            if w:
                score += delta
                notes.append(f"同一分句中该词之后有禁止性用语“{w}”，减分 {-delta:.2f}")
        if score < low:
            return score
        if "negation_sentence" in cues:
            words, delta = cues["negation_sentence"]
            w = words.first(before)
            if w:
                score += delta
                notes.append(f"同一句中该词之前有否定或禁止用语“{w}”，减分 {-delta:.2f}")
        if score < low:
            return score
        if "negation_clause" in cues or "negation_verb" in self._cue_patterns:
            # an enumeration ("不组织任何竞赛、排名活动") stays under the verb before it: the clause
            # for a negation reaches back over 、 to the last comma
            m = _LEFT_COMMA_RE.search(t, ss, a)
            clause = t[m.start() + 1 if m else ss : a]
            w = None
            if "negation_clause" in cues:
                words, delta = cues["negation_clause"]
                w = words.first(clause)
                if w:
                    score += delta
                    notes.append(f"同一分句中该词之前有否定用语“{w}”，减分 {-delta:.2f}")
            if not w and "negation_verb" in self._cue_patterns:
                rx, delta = self._cue_patterns["negation_verb"]
                m = rx.search(clause)
                if m:
                    score += delta
                    notes.append(f"同一分句中否定动词“{m.group()}”支配该词，减分 {-delta:.2f}")
        if score < low:
            return score
        if "negation_list" in cues:
            words, delta = cues["negation_list"]
            w = words.first(t[b:se])
            if w:
                score += delta
                notes.append(f"句中其后的概括性禁止用语“{w}”涵盖该词，减分 {-delta:.2f}")
        if score < low:
            return score
        quoted = _quoted(t, a, b, ss, se)
        if quoted is not None:
            qs, qe = quoted
            for name, region, label in (("mention_after", _after_quotes(t, qe, se), "之后"),
                                        ("mention_before", t[max(ss, qs - 4) : qs], "之前")):
                w = None
                if name in cues:
                    words, delta = cues[name]
                    w = words.first(region)
                elif name in self._cue_patterns:
                    rx, delta = self._cue_patterns[name]
                    m = rx.match(region)
                    w = m.group() if m else None
                if w:
                    score += delta
                    notes.append(f"该词在引号中被引述（引号{label}为“{w}”），属提及而非宣传，减分 {-delta:.2f}")
                    break
        if score < low:
            return score
        if "mention_frame" in self._cue_patterns:
            rx, delta = self._cue_patterns["mention_frame"]
            for m in rx.finditer(t, ss, se):
                if m.start() <= a and m.end() >= b:
                    score += delta
                    notes.append(f"该词处于“{m.group()}”的列举句式中，属提及而非宣传，减分 {-delta:.2f}")
                    break
                if m.start() > a:
                    break
        if score < low:
            return score
        if ss > 0 and t[ss - 1] == ";" and "list_heading" in self._cue_patterns:
            rx, delta = self._cue_patterns["list_heading"]
            lo = max(0, ss - LIST_REACH)
            m = _LEFT_STOP_RE.search(t, lo, ss)
            m = rx.search(t, m.start() + 1 if m else lo, ss)
            if m:
                score += delta
                notes.append(f"该词是“{m.group()}”之下分号列举的一项，减分 {-delta:.2f}")
        if score < low:
            return score
        rest = before + "|" + t[b:se]
        for name, label in (("reporting", "通报、执法用语"), ("commentary", "评论、批评用语"),
                            ("register", "政策文件或新闻报道用语")):
            if name in cues:
                words, delta = cues[name]
                # commentary words may contain the term itself ("贩卖焦虑"): read the whole sentence
                w = words.first(t[ss:se] if name == "commentary" else rest)
                if w:
                    score += delta
                    notes.append(f"句中有{label}“{w}”，减分 {-delta:.2f}")
        return score

    # -- the whole text ------------------------------------------------------------------------

    def detect(self, text: str) -> list[Finding]:
        """Findings for ``text``, sorted by start; offsets index the original ``text``.

        Each line (a block of extracted page text) is evaluated on its own: windows and context
        never cross a line break. The whole text is folded and gated with numpy; the rest of the
        pipeline (normalisation, regex gates, automaton, rules, context) runs only on the lines
        where some pattern can still fire. Per-line findings are memoised by content, so
        boilerplate that repeats (menus, footers, the same banner on every page) is evaluated
        once.
        """
        return self.detect_folded(text)[0]

    def has_cue(self, folded: str, kinds: Iterable[str]) -> bool:
        """Whether ``folded`` holds a word of one of the shared word cues ``kinds`` (``_lexicon.yaml``:
        negation_sentence, commentary, …)."""
        return any(self._cues[k][0].first(folded) is not None for k in kinds if k in self._cues)

    def detect_folded(self, text: str) -> tuple[list[Finding], str | None, np.ndarray | None]:
        """``(detect(text), fold(text), its code points)`` — the fold as read by the line gate, for a
        caller that reads the same folded text next (the precedent matcher); ``(…, None, None)``
        when the text was not folded as a whole (a short or empty text)."""
        if not isinstance(text, str):
            text = text.decode("utf-8", "replace") if isinstance(text, bytes | bytearray) else str(text)
        if not text or self._empty:
            return [], None, None
        # detection makes many small objects and no reference cycles: the cyclic collector would
        # only walk them (and everything else alive in the process) again and again
        paused = gc.isenabled()
        if paused:
            gc.disable()
        try:
            if len(text) < SMALL_TEXT:
                return self._on_page(self._detect_small(text), text, None), None, None
            f, codes = fold_codes(text)
            return self._on_page(self._detect(text, f, codes), text, f), f, codes
        finally:
            if paused:
                gc.enable()

    def _on_page(self, found: list[Finding], text: str, folded: str | None) -> list[Finding]:
        """The page contexts (``scope: page``) of the findings' rules, read on the whole text: "寒暑假
        集训班开放报名" on a dance school's page that names no school subject anywhere. They only
        lower a score; a finding that falls below the threshold is dropped."""
        pages = self._page_contexts
        if not pages or not any(f.rule_id in pages for f in found):
            return found
        page = folded if folded is not None else fold(text)
        threshold = self.threshold - 1e-9
        # each rule's page contexts read the page once, whatever number of findings it has
        read: dict[str, list[tuple[float, str]]] = {}
        out = []
        for f in found:
            ctx = pages.get(f.rule_id)
            if ctx:
                hits = read.get(f.rule_id)
                if hits is None:
                    hits = read[f.rule_id] = []
                    for c, words, unless, head, tail in ctx:
                        w = words.first(page)
                        if w is not None and (unless is None or unless.first(page) is None):
                            hits.append((c.delta, head + w + tail))
                score, notes = f.score, [note for _, note in hits]
                score += sum(delta for delta, _ in hits)
                if notes:
                    if score < threshold:
                        continue
                    score = round(min(1.0, max(0.0, score)), 2)
                    expl = (*f.explanation[:-2], *notes, f"得分 {score:.2f} ≥ 判定阈值 {self.threshold:.2f}",
                            f.explanation[-1])
                    f = replace(f, score=score, explanation=expl)
            out.append(f)
        return out

    def _detect(self, text: str, f: str, codes: np.ndarray) -> list[Finding]:
        starts, ends, evasive, lines, alive, respelt = self._line_gate.scan(codes)
        cache = self._line_cache
        hits: list[tuple[int, tuple[tuple, ...]]] = []  # (line offset, the line's merged findings)
        # memoised lines first; each other distinct line goes through the regex gates (pattern by
        # pattern, over all lines at once) and then, if a pattern is still alive, the rules
        todo: list[str] = []
        rows: list[int] = []  # row of ``alive`` of each line in ``todo``
        where: dict[str, list[int]] = {}  # line → its offsets in the text
        starts_l = starts.tolist()
        ends_l = ends.tolist()
        for j, li in enumerate(lines.tolist()):
            pos = starts_l[li]
            line = f[pos : ends_l[li]]
            found = cache.get(line)
            if found is not None:
                if found:
                    hits.append((pos, found))
                continue
            at = where.get(line)
            if at is None:
                where[line] = [pos]
                todo.append(line)
                rows.append(j)
            else:
                at.append(pos)
        if todo:
            self._run_lines(todo, rows, where, evasive[lines], alive, respelt, hits)
        hits.sort(key=_FIRST)
        out = []
        append = out.append
        for pos, found in hits:
            for s, e, cat, rid, score, sev, basis, expl, title in found:
                s += pos
                e += pos
                append(Finding(cat, rid, text[s:e], s, e, score, sev, basis, expl, title))
        return out

    def _detect_small(self, text: str) -> list[Finding]:
        """A short text (one ad, an OCR snippet): every line with an anchor, an evasion or a
        respelt word goes through the rules directly (the line gate's fixed cost would dominate)."""
        f = fold(text)
        cache = self._line_cache
        out: list[Finding] = []
        pos = 0
        first = self._plain_automaton.iter
        for line in f.split("\n"):
            if line:
                found = cache.get(line)
                if found is None:
                    found = ()
                    evasive = EVASION_RE.search(line) is not None
                    if evasive or next(first(line), None) is not None or self.normalizer.has_substitution(line):
                        cands = self._detect_line(line, evasive)
                        if cands:
                            found = self._merge(cands)
                    if len(cache) >= 50_000:
                        cache.clear()
                    cache[line] = found
                for s, e, cat, rid, score, sev, basis, expl, title in found:
                    out.append(Finding(cat, rid, text[pos + s : pos + e], pos + s, pos + e, score, sev, basis, expl,
                                       title))
            pos += len(line) + 1
        return out

    def _run_lines(self, todo: list[str], rows: list[int], where: dict[str, list[int]], evasive: np.ndarray,
                   alive: np.ndarray, respelt: np.ndarray, hits: list) -> None:
        """Regex gates then rules for the distinct lines ``todo`` (``rows``: their rows of the gate's
        arrays); their merged findings go to ``hits`` at each offset in ``where`` and to the memo."""
        cache = self._line_cache
        ridx = np.array(rows, dtype=np.int64)
        live = alive[ridx]
        ev = evasive[ridx]
        rs = respelt[ridx]
        gated = ~rs
        # the text the rules will read: a line with an evasion is normalised now (a respelt line is
        # left to ``_detect_line``, which gates it word by word once its words are restored)
        norms: list[Normalized | None] = [None] * len(todo)
        texts = todo
        evk = np.flatnonzero(ev & gated).tolist()
        if evk:
            texts = list(todo)
            normalize = self.normalizer.normalize
            for k in evk:
                norms[k] = nk = normalize(todo[k], folded=True)
                texts[k] = nk.text
        # the lines each regex gate reads, for all gates at once (gate by gate, then line by line)
        cols = self._regex_gate_cols
        which, lines = np.nonzero((live[:, cols] & gated[:, None]).T)
        bounds = np.searchsorted(which, np.arange(len(cols) + 1)).tolist()
        lines_l = lines.tolist()
        dead_k: list[int] = []  # (line, pair) where the pair's regex gate failed
        dead_j: list[int] = []
        for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            if lo == hi:
                continue
            j, rx, gate = self._regex_gates[i]
            ks = lines_l[lo:hi]
            if gate is None:
                search = rx.search
                dead = [k for k in ks if search(texts[k]) is None]
            else:
                dead = [k for k in ks if not self._regex_gate(rx, gate, texts[k])]
            if dead:
                dead_k += dead
                dead_j += [j] * len(dead)
        if dead_k:
            live[dead_k, dead_j] = False
        # each line's live pairs as an int bit mask (pair j ↔ bit j)
        packed = np.packbits(live, axis=1, bitorder="little")
        any_live = live.any(axis=1).tolist()
        go = [k for k, a in enumerate(any_live) if a and gated[k]]
        spelt: list[str | None] = [None] * len(todo)
        for k, sp in zip(go, self._spelling.texts([texts[k] for k in go]), strict=True):
            spelt[k] = sp
        evl = ev.tolist()
        gatedl = gated.tolist()
        from_bytes = int.from_bytes
        for k, line in enumerate(todo):
            merged: tuple[tuple, ...] = ()
            if any_live[k]:
                found = self._detect_line(line, evl[k], from_bytes(packed[k].tobytes(), "little"), gatedl[k],
                                          norms[k], spelt[k])
                if found:
                    merged = self._merge(found)
                    for pos in where[line]:
                        hits.append((pos, merged))
            if len(line) < 4096:
                if len(cache) >= 50_000:
                    cache.clear()
                cache[line] = merged

    @staticmethod
    def _regex_gate(rx: re.Pattern[str], g, t: str) -> bool:
        """Whether the pattern's regex matches somewhere in ``t`` (and the check's gate, one of
        ``_check_gates``, accepts it)."""
        if g is None:
            return rx.search(t) is not None
        for m in rx.finditer(t):
            if g(m.group()):
                return True
        return False

    def _gate(self, t: str, targets: set[tuple[int, int]]) -> set[tuple[int, int]]:
        """The (rule, pattern) pairs that can fire in the line ``t``: every ``require`` group of the
        rule has a word in the line and the pattern's regex matches somewhere in it."""
        rules = self.rules
        req_ids = self._req_ids
        present: set[int] | None = None
        alive: set[tuple[int, int]] = set()
        for ri, pi in targets:
            ok = True
            if req_ids[ri]:
                if present is None:
                    present = set()
                    for _, gis in self._req_automaton.iter(t):
                        present |= gis
                for gi in req_ids[ri]:
                    if gi not in present:
                        ok = False
                        break
            if ok:
                rule = rules[ri]
                rx = self._rx[ri][pi]
                if rx is None:
                    alive.add((ri, pi))
                    continue
                if self._regex_gate(rx, self._check_gates.get(rule.check) if rule.check else None, t):
                    alive.add((ri, pi))
        return alive

    def _detect_line(self, line: str, evasive: bool = True, live: int | None = None, gated: bool = False,
                     norm: Normalized | None = None, spelt: str | None = None) -> tuple[_Cand, ...]:
        """Candidates of one folded line; offsets index the line as given (= the original line).
        ``live``: bit mask of the (rule, pattern) pairs the line gate let through (None: all);
        ``gated``: ``live`` already passed the regex gates on the text the rules read: the line, or
        ``norm`` (its normalisation, given when the line has an evasion); ``spelt``: that text
        spelt for the automaton, when known."""
        t = line
        if norm is not None:
            t = norm.text
        elif evasive or (not gated and self.normalizer.has_substitution(line)):
            norm = self.normalizer.normalize(line, folded=True)
            t = norm.text
        if spelt is None:
            hits = list(self._plain_automaton.iter(t))
            shift = 0
        else:
            hits = list(self._automaton.iter(spelt))
            shift = 1
        alive = 0
        for _, v in hits:
            alive |= v[2]
        if live is not None:
            alive &= live
        if not alive:
            return ()
        if not gated:
            pairs = self._pairs
            targets = {pairs[j] for j in range(alive.bit_length()) if alive >> j & 1}
            alive = 0
            for ri, pi in self._gate(t, targets):
                alive |= self._bit[ri, pi]
            if not alive:
                return ()
        rules = self.rules
        cands: list[_Cand] = []
        seen: set[tuple[int, int, int]] = set()
        windows: dict[int, tuple[int, int]] = {}
        rx_cache: dict[tuple[int, int, int], list[tuple[int, int]]] = {}
        threshold = self.threshold
        for end, (n, tg, tmask) in hits:
            if not tmask & alive:
                continue
            e = (end >> shift) + 1
            s = e - n
            win = None
            for ri, pi, pbit in tg:
                if not pbit & alive:
                    continue
                if win is None:
                    win = windows.get(s)
                    if win is None:
                        win = windows[s] = _sentence(t, s, e)
                    ss, se = win
                rule = rules[ri]
                pat = rule.patterns[pi]
                if pat.regex is None:
                    spans: tuple[tuple[int, int], ...] = ((s, e),)
                else:
                    rkey = (ri, pi, ss)
                    found = rx_cache.get(rkey)
                    if found is None:
                        found = rx_cache[rkey] = [
                            (m.start(), m.end()) for m in self._rx[ri][pi].finditer(t, ss, se) if m.end() > m.start()
                        ]
                    if not found:
                        continue
                    spans = tuple((x, y) for x, y in found if x < e and y > s)
                for a, b in spans:
                    key = (ri, a, b)
                    if key in seen:
                        continue
                    seen.add(key)
                    c = self._evaluate(ri, pat, t, a, b, ss, se, s, e)
                    if c is not None and c.score >= threshold - 1e-9:
                        c.matched = t[a:b]
                        c.ns, c.ne = a, b
                        if norm is not None and norm.layers:
                            c.start, c.end = norm.to_original(a, b)
                        cands.append(c)
        return tuple(cands)

    def _merge(self, found: tuple[_Cand, ...]) -> tuple[tuple, ...]:
        """One line's candidates → its findings, as ``(start, end, category, rule id, score, severity,
        basis, explanation, title)`` with offsets into the line, sorted by (start, end, rule id).

        Per category, candidates that overlap or touch in the normalised line form a cluster (a sweep
        over start offsets: "幼小衔接" + "拼音班" is one finding); the best one is reported (its span in
        the original line) and the others are named in its explanation. A candidate never leaves
        its line, so neither does a cluster: merging line by line is merging the whole text."""
        cands = sorted(((c.rule.category, c.ns, -c.score, c.ne, c) for c in found), key=_CAND_ORDER)
        kept: list[tuple[int, int, _Cand, list[str]]] = []
        i = 0
        n = len(cands)
        while i < n:
            cat, _, _, reach, c = cands[i]
            j = i + 1
            while j < n and cands[j][1] <= reach and cands[j][0] == cat:
                if cands[j][3] > reach:
                    reach = cands[j][3]
                j += 1
            if j == i + 1:
                kept.append((c.start, c.end, c, c.notes))
            else:
                cluster = cands[i:j]
                # ties go to the longer match, measured in the normalised text: invisible characters
                # or separators inside one match must not decide which rule is reported
                best = max(cluster, key=lambda x: (x[4].score, len(x[4].matched)))
                bc = best[4]
                notes = bc.notes
                extra = [
                    f"同时符合规则“{x[4].rule.title}”（{x[4].rule.id}）：“{x[4].matched}”"
                    for x in cluster
                    if x is not best and x[4].rule.id != bc.rule.id
                ][:6]
                if extra:
                    notes = [*notes, *extra]
                kept.append((bc.start, bc.end, bc, notes))
            i = j
        kept.sort(key=lambda k: (k[0], k[1], k[2].rule.id))
        out = []
        heads = self._heads
        tail = f" ≥ 判定阈值 {self.threshold:.2f}"
        for os_, oe, c, notes in kept:
            score = round(min(1.0, max(0.0, c.score)), 2)
            r = c.rule
            head, foot, basis = heads[r.id]
            expl = (head, *notes, f"得分 {score:.2f}{tail}", foot)
            out.append((os_, oe, r.category, r.id, score, r.severity, basis, expl, r.title))
        return tuple(out)


def _context_note(c: Context) -> tuple[str, str]:
    """A context's note around the word found: ``head + word + tail``."""
    verb = "加分" if c.delta > 0 else "减分"
    label = f"（{c.label}）" if c.label else ""
    return f"{SCOPE_ZH[c.scope]}出现“", f"”{label}，{verb} {abs(c.delta):.2f}"


def _remembered(gate: Callable[[str], bool], size: int = 20_000) -> Callable[[str], bool]:
    """``gate`` (a check's gate: a pure function of the matched words) answering each words once;
    a gate that raises accepts (a gate must never hide a candidate)."""
    seen: dict[str, bool] = {}

    def remembered(words: str) -> bool:
        got = seen.get(words)
        if got is None:
            try:
                got = bool(gate(words))
            except Exception:  # a gate must never hide a candidate
                got = True
            if len(seen) >= size:
                seen.clear()
            seen[words] = got
        return got

    return remembered


def _minimal(words: tuple[str, ...]) -> tuple[str, ...]:
    """The words of a group that contain no other word of it: a line has a word of the group exactly
    when it has one of these (the gate reads a word by its first characters, so "作业辅导中心" would
    let every line with "作业辅导" through, while its part "辅导中心" does not)."""
    return tuple(w for w in words if not any(o != w and o in w for o in words))


_CAND_ORDER = itemgetter(0, 1, 2)
_FIRST = itemgetter(0)


@lru_cache(maxsize=1)
def default_detector() -> Detector:
    return Detector()


def detect(text: str) -> list[Finding]:
    return default_detector().detect(text)
