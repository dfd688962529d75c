"""The fast path of detection (vectorised line gate, regex gates, first-character lookaheads, per-line
memo) finds exactly what evaluating every line in full finds."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors import engine
from detectors.engine import Detector, default_detector
from detectors.gate import regex_groups, with_first_chars
from detectors.model import Finding
from detectors.normalize import EVASION_RE, fold

ROOT = Path(__file__).resolve().parent.parent
HELDOUT = ROOT / "tests" / "data" / "detectors_heldout.jsonl"


def _texts() -> list[str]:
    det = default_detector()
    out = [t for r in det.rules for t in (*r.positive, *r.negative)]
    if HELDOUT.exists():
        out += [json.loads(x)["text"] for x in HELDOUT.read_text(encoding="utf-8").splitlines() if x.strip()]
    return out


def _slow(det: Detector, text: str) -> list[Finding]:
    """Every non-empty line through the rules with no gate at all (the reference)."""
    f = fold(text)
    out = []
    pos = 0
    for line in f.split("\n"):
        if line:
            evasive = EVASION_RE.search(line) is not None
            found = det._detect_line(line, evasive, None, False)
            for s, e, cat, rid, score, sev, basis, expl, title in det._merge(found) if found else ():
                out.append(Finding(cat, rid, text[pos + s : pos + e], pos + s, pos + e, score, sev, basis, expl, title))
        pos += len(line) + 1
    return out


def _mixed(seed: int, n: int) -> str:
    rng = random.Random(seed)
    texts = _texts()
    fillers = ["首页 | 新闻中心 | 课程介绍", "周六上午美术班 | 6-12岁 |", "今天晴，最高气温28℃。", "每期12节课，费用880元。",
               "学校课后服务时间为每天下午3:30至5:30。", "拍\u200b照搜\u200b题", "ao数 暑假班", "１２个月课程包"]
    lines = []
    for _ in range(n):
        x = rng.random()
        if x < 0.5:
            lines.append(rng.choice(texts))
        elif x < 0.8:
            lines.append(rng.choice(fillers))
        else:  # an evasive variant: separators or invisible characters between characters
            t = rng.choice(texts)
            lines.append("".join(c + (rng.choice([" ", "*", "\u200b", " | "]) if rng.random() < 0.2 else "") for c in t))
    return "\n".join(lines)


@pytest.mark.parametrize("small", [0, None])  # 0: every text through the line gate; None: as shipped
@pytest.mark.parametrize("seed,n", [(1, 60), (2, 400), (3, 3000)])  # the last one takes the numpy fold path
def test_fast_path_equals_full_evaluation(seed, n, small, monkeypatch):
    if small is not None:
        monkeypatch.setattr(engine, "SMALL_TEXT", small)
    det = Detector()
    text = _mixed(seed, n)
    assert det.detect(text) == _slow(det, text)
    # and again with the per-line memo warm
    assert det.detect(text) == _slow(det, text)


def test_line_repeated_in_one_text_is_reported_at_each_place():
    det = Detector()
    line = "暑期语数外集训营火热报名"
    text = "\n".join([line, "今天晴。", line, line])
    one = [(f.rule_id, f.start, f.end) for f in Detector().detect(line)]
    assert one
    at = [0, len(line) + 6, 2 * len(line) + 7]
    assert [(f.rule_id, f.start, f.end) for f in det.detect(text)] == [(r, s + p, e + p) for p in at for r, s, e in one]
    assert all(text[f.start : f.end] == f.text for f in det.detect(text))


def _rule_regexes():
    return [(r.id, i, p.regex) for r in default_detector().rules for i, p in enumerate(r.patterns) if p.regex is not None]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(_texts() + ["，", "。", " ", "晚上9点半", "12个月", "100节", "¥12800元"]), max_size=8))
def test_first_char_lookahead_keeps_every_match(parts):
    s = "".join(parts)
    for _, _, rx in _rule_regexes():
        fast = with_first_chars(rx)
        assert [m.span() for m in fast.finditer(s)] == [m.span() for m in rx.finditer(s)]


def test_first_char_lookahead_is_skipped_when_unknown():
    for pat in (r".*课", r"(?:a)?", r"[^x]班", r"\b班"):
        rx = re.compile(pat)
        fast = with_first_chars(rx)
        assert fast is rx or [m.span() for m in fast.finditer("x班 a课")] == [m.span() for m in rx.finditer("x班 a课")]
    assert with_first_chars(re.compile(r"(?:周六|周日)?\d+点")).pattern.startswith("(?=[")


def test_regex_groups_are_needed_by_every_match():
    texts = _texts()
    for rid, i, rx in _rule_regexes():
        groups = regex_groups(rx)
        for t in texts:
            for m in rx.finditer(fold(t)):
                for g in groups:
                    assert any(w in m.group() for w in g), (rid, i, m.group(), g)


def test_regex_groups_read_literals_alternations_and_classes():
    assert regex_groups(re.compile(r"(暑假|寒假)[^。]{0,4}(班|课)")) == [("寒假", "暑假"), ("班", "课")]
    assert regex_groups(re.compile(r"星期[六日]")) == [("星期六", "星期日")]
    assert regex_groups(re.compile(r"(\d+元|[一二]+块)")) == [("元", "块")]
    assert regex_groups(re.compile(r"(?:早上)?\d+点")) == [("点",)]
    assert regex_groups(re.compile(r"班", re.IGNORECASE)) == []


def test_gate_needs_grow_with_packs_not_with_words(tmp_path):
    """A rule pack with many rare words adds bits to the gate, not per-character work."""
    import shutil

    from detectors.engine import RULES_DIR

    for p in RULES_DIR.glob("*.yaml"):
        shutil.copy(p, tmp_path / p.name)
    rng = random.Random(5)
    words = sorted({"".join(chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(3)) for _ in range(3000)})
    rules = [{"id": f"extra.r{k}", "category": "false_claim", "basis": {"document": "d", "text": "t"},
              "patterns": [{"anchors": words[k * 100 : (k + 1) * 100]}], "examples": {"positive": [words[k * 100]]}}
             for k in range(len(words) // 100)]
    (tmp_path / "zz_extra.yaml").write_text(json.dumps({"rules": rules}, ensure_ascii=False), encoding="utf-8")
    big = Detector(tmp_path)
    text = _mixed(9, 800)
    base = Detector()
    assert [f for f in big.detect(text) if not f.rule_id.startswith("extra.")] == base.detect(text)
    assert big._line_gate.width >= base._line_gate.width


def test_pattern_needs_spread_over_several_words_of_bits():
    """Patterns needing groups from several 64-bit words of the gate's group bits (and one needing
    nothing): with words of one or two characters (which the gate reads exactly) a pattern is alive
    in a line exactly when the line has a word of every group it needs."""
    import numpy as np

    from detectors.gate import LineGate

    rng = random.Random(8)
    words: list[str] = []
    while len(words) < 380:
        w = "".join(chr(rng.randint(0x4E00, 0x4EFF)) for _ in range(rng.randint(1, 2)))
        if w not in words:
            words.append(w)
    groups = [tuple(words[i : i + 2]) for i in range(0, 380, 2)]  # 190 groups: three words of bits
    needs = [sorted(rng.sample(range(len(groups)), rng.randint(0, 4))) for _ in range(150)] + [[0, 64, 128, 189]]
    gate = LineGate(groups, needs)
    assert gate.width == 3 and gate._need_more and len(gate._need_more[0][0])
    lines = ["".join(rng.choice(words + ["，", "的", "A"]) for _ in range(rng.randint(0, 40))) for _ in range(400)]
    lines += ["".join(groups[g][0] for g in needs[-1]), "x" * 5]
    text = "\n".join(lines)
    _, _, _, rows, alive, _ = gate.scan(np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32))
    got = {int(r): alive[k].tolist() for k, r in enumerate(rows)}
    nothing = [not need for need in needs]
    for i, line in enumerate(lines):
        want = [all(any(w in line for w in groups[g]) for g in need) for need in needs]
        # a line with no gate word at all is not listed (the patterns needing nothing are alive everywhere)
        assert got.get(i, nothing) == want, i
    assert got[len(lines) - 2][-1]


def test_check_gates_answer_each_words_once_and_accept_on_error():
    from detectors.checks import GATES
    from detectors.engine import _remembered

    calls = []

    def flaky(words: str) -> bool:
        calls.append(words)
        if words == "坏":
            raise ValueError(words)
        return words.endswith("点")

    gate = _remembered(flaky, size=3)
    assert [gate(w) for w in ["晚9点", "晚9点", "坏", "坏", "上午"]] == [True, True, True, True, False]
    assert calls == ["晚9点", "坏", "上午"]
    assert gate("下午5点") and gate("晚9点")  # the memo was full: cleared, still right
    det = default_detector()
    for name, g in GATES.items():
        for words in ["晚上9点半", "下午3:00-5:30", "12个月", "100节", "¥12800元", "10天60小时", "", "通过率98%"]:
            try:
                want = bool(g(words))
            except Exception:
                want = True
            assert det._check_gates[name](words) == want, (name, words)


def test_detect_folded_gives_the_fold_it_read():
    from detectors.normalize import fold_codes

    det = Detector()
    text = _mixed(4, 400)
    found, folded, codes = det.detect_folded(text)
    f, c = fold_codes(text)
    assert found == det.detect(text) and folded == f and (codes == c).all()
    assert det.detect_folded("暑假班") == (det.detect("暑假班"), None, None)
    assert det.detect_folded("") == ([], None, None)


def test_a_pattern_with_a_prefix_of_its_own_keeps_it():
    """``re`` skips by a literal prefix or a set of first characters itself (faster than a lookahead)."""
    for pat in (r"周末[^。]{0,4}班", r"(?:暑假|寒假)班", r"[一二三]年级"):
        rx = re.compile(pat)
        assert with_first_chars(rx) is rx
