"""The precedent matcher's fast path gives what the straightforward computation gives.

``PrecedentDetector.annotate`` compares only the windows the vectorised bound of
``candidate_windows`` lets through, reuses citations per sentence and category, and reads
precomputed masks. The reference below does none of that: it scores every window of
``all_windows`` exactly, and cites every rule finding afresh, as the matcher is defined. Both must
give the same findings, the same suspected findings and the same citations, on varied texts
(hypothesis) and on the benchmark's page-like text.
"""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.bench_detectors import _TEMPLATES, _fill, realistic_text
from detectors.engine import Detector, default_detector
from detectors.model import Finding
from detectors.normalize import char_fold
from detectors.precedents import (
    CITE_AT,
    Match,
    Precedent,
    PrecedentDetector,
    _sentence_around,
    _trim,
    all_windows,
    candidate_windows,
    load_library,
)

LIBRARY = load_library()
OWN = [
    Precedent("own-1", "报名即送学习机，考不上重点高中学费全退", "violation", ("guarantee_promise",),
              "https://example.org/case/1", "某区市场监管局处罚决定书", "某区市场监管局", "责令停止发布，罚款三万元"),
    Precedent("own-2", "少儿口才表演周末体验课，欢迎家长带孩子试听", "compliant", (), "https://example.org/ok/2",
              "某艺术培训学校招生简章"),
]


def _allowed(d: PrecedentDetector) -> np.ndarray:
    return np.array([d.exclude is None or not d.exclude(p) for p in d.matcher.precedents], dtype=bool)


def _pick(d: PrecedentDetector, sims: np.ndarray, mask: np.ndarray, category: str | None = None,
          extra: np.ndarray | None = None) -> tuple[Precedent, float] | None:
    """The closest precedent in ``mask`` (of ``category``'s main kind if there is one, else of the
    category at all), among those allowed: the matcher's rule, spelt out."""
    precedents = d.matcher.precedents
    if category is not None:
        main = np.array([p.categories[:1] == (category,) for p in precedents], dtype=bool)
        anywhere = np.array([category in p.categories for p in precedents], dtype=bool)
        mask = mask & (main if (mask & main).any() else anywhere)
    mask = mask & _allowed(d)
    if extra is not None:
        mask = mask & extra
    if not mask.any():
        return None
    i = int(np.argmax(np.where(mask, sims, -1.0)))
    return precedents[i], float(sims[i])


def reference_annotate(d: PrecedentDetector, text: str, found: list[Finding]) -> list[Finding]:
    """Every window scored exactly; every citation computed afresh."""
    m = d.matcher
    out = []
    for f in found:
        lo, hi = _sentence_around(text, f.start, f.end)
        sims = m.similarities(text[lo:hi])
        got = _pick(d, sims, m.violation, f.category)
        if got is None:
            out.append(f)
            continue
        p, sim = got
        if sim < CITE_AT:
            decided = np.array([bool(x.authority) for x in m.precedents], dtype=bool)
            p, sim = _pick(d, sims, m.violation, f.category, decided) or (p, sim)
        cite = p.citation(sim if sim >= CITE_AT else None)
        out.append(dataclasses.replace(f, precedent=cite, explanation=(*f.explanation, f"先例：{cite}")))
    folded = char_fold(text)
    best: dict[tuple[int, int], tuple[Precedent, float]] = {}
    for s, e in all_windows(folded):
        if any(f.start < e and max(f.end, f.start + 1) > s for f in found):
            continue
        sims = m.similarities(folded[s:e], folded=True)
        pos = _pick(d, sims, m.violation & m.wordy)
        if pos is None or pos[1] < d.suspect_at:
            continue
        neg = _pick(d, sims, ~m.violation)
        if neg is not None and neg[1] + d.margin >= pos[1]:
            continue
        other = next(((x, y) for x, y in best if x <= s and e <= y or s <= x and y <= e), None)
        if other is None or pos[1] > best[other][1]:
            if other is not None:
                del best[other]
            best[(s, e)] = pos
    for (s, e), (p, sim) in best.items():
        s, e = _trim(text, s, e)
        out.append(d._suspected(text, s, e, Match(p, sim)))
    out.sort(key=lambda f: (f.start, f.end, f.rule_id))
    return out


@pytest.fixture(scope="module")
def no_rules(tmp_path_factory):
    """A real rule engine with no rule packs: every sentence is open to the suspected tier."""
    return Detector(tmp_path_factory.mktemp("no-rules"))


def _detectors(no_rules) -> list[PrecedentDetector]:
    rules = default_detector()
    reviewed = [Precedent("confirmed:f1", "秋季新课：本中心独家押题，期末不进前三免费重读一学期", "violation",
                          ("guarantee_promise",), origin="confirmed", source_title="某培训中心"),
                Precedent("dismissed:f2", "周末美术兴趣班欢迎报名，地址海淀区", "compliant", (), origin="dismissed")]
    sources = sorted({p.source_url for p in LIBRARY})
    return [
        PrecedentDetector(rules, LIBRARY, wording=False),
        PrecedentDetector(no_rules, LIBRARY, wording=False),
        PrecedentDetector(no_rules, LIBRARY, suspect_at=0.1, margin=0.02, wording=False),
        PrecedentDetector(no_rules, [*LIBRARY, *OWN], suspect_at=0.3, wording=False).with_precedents(reviewed),
        PrecedentDetector(rules, LIBRARY, exclude=lambda p, u=sources[::3]: p.source_url in u, wording=False),
        PrecedentDetector(no_rules, OWN, wording=False),
    ]


_VIOLATIONS = [p.text for p in LIBRARY if p.violation]
_COMPLIANT = [p.text for p in LIBRARY if not p.violation]
_PHRASES = ["中考保过班名额有限", "幼小衔接拼音识字班", "周末奥数竞赛冲刺班", "暑假提前学下学期课程", "一次性缴纳全年学费享八折",
            "清华北大在职老师授课", "不提分全额退款", "拍照搜题秒出答案", "今天天气晴", "欢迎家长咨询", "地址：海淀区",
            "每周六上午九点", "学费480元", "ＡＢＣ英语１２３", "補習班老師", "保过" * 15, "哈哈" * 40, "a1b2c3 D4",
            "报\u200b名即送学习机", "一对一"]
_SEPS = ["。", "！", "？", "!", "?", "；", ";", "\n", "，", ",", "、", "：", ":", " ", "", "\n\n", "…", "“", "”"]


def _perturbed(rng: random.Random) -> str:
    """A violation text with a share of its characters replaced, dropped or doubled: similarities
    anywhere from far below to just above the thresholds."""
    t = list(rng.choice(_VIOLATIONS))
    share = rng.random() * 0.8
    out = []
    for c in t:
        x = rng.random()
        if x >= share:
            out.append(c)
        elif x < share / 3:
            out.append(rng.choice("的了是在培训班课学生家长老师周末美术天气"))
        elif x < share * 2 / 3:
            out.append(c + c)
    return "".join(out)


def _fragment(rng: random.Random) -> str:
    t = rng.choice(_VIOLATIONS + _COMPLIANT)
    a = rng.randrange(len(t))
    return t[a : a + rng.randint(4, 40)]


@st.composite
def page_texts(draw) -> str:
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    parts = []
    for _ in range(draw(st.integers(1, 40))):
        kind = draw(st.sampled_from(["violation", "perturbed", "perturbed", "compliant", "fragment", "phrase",
                                     "filler", "chars"]))
        if kind == "violation":
            parts.append(rng.choice(_VIOLATIONS))
        elif kind == "perturbed":
            parts.append(_perturbed(rng))
        elif kind == "compliant":
            parts.append(rng.choice(_COMPLIANT))
        elif kind == "fragment":
            parts.append(_fragment(rng))
        elif kind == "phrase":
            parts.append(rng.choice(_PHRASES))
        elif kind == "filler":
            parts.append(_fill(rng, rng.choice(_TEMPLATES)))
        else:
            parts.append(draw(st.text(alphabet="的了是在培训班课学生家长老师补习考试提分保证退费报名0123456789abcxyz，。；\n ",
                                      max_size=80)))
        parts.append(draw(st.sampled_from(_SEPS)))
    return "".join(parts)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(text=page_texts(), which=st.integers(0, 5))
def test_fast_path_gives_the_reference_findings(no_rules, text, which):
    if not _CACHE:  # one detector per kind for the whole run: its memos carry over between texts
        _CACHE.extend(_detectors(no_rules))
    d = _CACHE[which]
    found = d.detector.detect(text)
    assert d.annotate(text, found) == reference_annotate(d, text, found)
    assert d.detect(text) == reference_annotate(d, text, d.detector.detect(text))


_CACHE: list[PrecedentDetector] = []


def test_fast_path_on_page_like_text_with_violations(no_rules, monkeypatch):
    """The benchmark's kind of text (a fresh paragraph per line, 1 % violation sentences), also read
    in small pieces: same findings; and suspected findings do occur, so the comparison is not
    empty."""
    compliant = _COMPLIANT + [_fill(random.Random(k), _TEMPLATES[k % len(_TEMPLATES)]) for k in range(50)]
    text, spans = realistic_text(0.15, _VIOLATIONS, compliant, seed=11, violation_share=0.05)
    assert spans
    for d in _detectors(no_rules)[:3]:
        found = d.detector.detect(text)
        fast = d.annotate(text, found)
        assert fast == reference_annotate(d, text, found)
        assert any(f.tier == "suspected" for f in fast)
    with monkeypatch.context() as mp:
        mp.setattr("detectors.precedents.CHUNK_CHARS", 700)
        d = _detectors(no_rules)[1]
        found = d.detector.detect(text)
        assert d.annotate(text, found) == reference_annotate(d, text, found)


def test_the_bound_lets_few_windows_through(no_rules):
    """Not a speed test: the point of the bound is that exact scoring is rare on ordinary text."""
    text, _ = realistic_text(0.2, [], _COMPLIANT, seed=3, violation_share=0)
    d = PrecedentDetector(no_rules, LIBRARY, wording=False)
    folded = char_fold(text)
    windows = all_windows(folded)
    cands = candidate_windows(d.matcher, folded, d.suspect_at)
    assert set(cands) <= set(windows)
    assert len(cands) < len(windows) / 20


def test_the_bound_holds_when_grams_repeat_many_times(no_rules):
    """A gram repeated 13 times or more weighs less than its count ((1 + ln c)² < c): the bound must
    still hold for a sentence padded with a repeated word until its similarity is just above the
    threshold (the hardest case for the bound)."""
    d = PrecedentDetector(no_rules, LIBRARY, suspect_at=0.1, wording=False)
    m = d.matcher
    suspects = m.violation & m.wordy
    rng = random.Random(2)
    lines = []
    for text in rng.sample([t for t in _VIOLATIONS if len(t) < 80], 25):
        head = text.rstrip("。！？!?；;")
        if float(m.similarities(head)[suspects].max()) < d.suspect_at:
            continue
        pad = rng.choice(["哈", "哈哈", "啊呀", "培训"])
        k = 1
        while k < 400 and float(m.similarities(head + pad * (k + 1))[suspects].max()) >= d.suspect_at:
            k += 1
        lines.append(head + pad * k)
    text = "\n".join(lines)
    folded = char_fold(text)
    cands = set(candidate_windows(m, folded, d.suspect_at))
    reached = 0
    for s, e in all_windows(folded):
        if float(m.similarities(folded[s:e], folded=True)[suspects].max()) >= d.suspect_at:
            reached += 1
            assert (s, e) in cands, folded[s:e]
    assert reached >= 10
    assert d.annotate(text, []) == reference_annotate(d, text, [])


def test_the_vocabulary_table_finds_every_gram_and_nothing_else():
    from detectors.precedents import Matcher, _gram_code

    for m in (Matcher(LIBRARY), Matcher(OWN), Matcher([*LIBRARY, *OWN])):
        grams = list(m.vocab)
        codes = np.array([_gram_code(t) for t in grams], dtype=np.int64)
        assert m.lookup(codes).tolist() == [m.vocab[t] for t in grams]
        rng = random.Random(4)
        others = {"".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(rng.choice((2, 3)))) for _ in range(5000)}
        others -= set(grams)
        found = m.lookup(np.array([_gram_code(t) for t in others], dtype=np.int64))
        assert (found == -1).all()
