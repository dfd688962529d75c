"""Normalisation against evasion; offsets always map back to the input; property tests."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors import detect
from detectors.engine import default_detector

ZW = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"]


@pytest.mark.parametrize(
    "text,category",
    [
        ("拍 照 搜 题，秒出答案", "photo_search"),
        ("拍*照*搜*题", "photo_search"),
        ("拍📷照🔥搜✨题", "photo_search"),
        ("拍\u200b照\u200d搜\u2060题", "photo_search"),
        ("ao数暑假班火热招生", "off_hours_schedule"),
        ("xue前班报名中", "preschool_subject"),
        ("BS真题冲刺班", "competition_ranking"),
        ("YCB集训", "competition_ranking"),
        ("學前班招生，幼小銜接拼音課", "preschool_subject"),
        ("ＹＣＢ集训营", "competition_ranking"),
        ("保ｇｕｏ班，考不过全额退款", "guarantee_promise"),
    ],
)
def test_evasions_are_caught(text, category):
    fs = detect(text)
    assert any(f.category == category for f in fs), (text, fs)
    for f in fs:
        assert text[f.start : f.end] == f.text


def test_spaces_do_not_glue_across_sentences():
    # "拍照。搜" must not become 拍照搜; nor across a newline or a comma
    for s in ("禁止拍照。搜一下题库", "拍照\n搜一下", "请拍照，搜索答案请用书", "周六。 数学老师"):
        for f in detect(s):
            assert not any(c in f.text for c in "。\n，"), (s, f)
    assert not [f for f in detect("周六。 数学老师") if f.category == "off_hours_schedule"]


def test_offset_map_on_substitution():
    n = default_detector().normalizer.normalize("报xue前班，BS集训")
    assert n.text == "报学前班,杯赛集训"
    a = n.text.index("学前")
    assert n.to_original(a, a + 3) == (1, 6)
    b = n.text.index("杯赛")
    assert n.to_original(b, b + 2) == (7, 9)


TERMS = ["拍照搜题秒出答案", "幼小衔接拼音班火热招生", "原价430元，现价仅12元", "中考包分百日集训营",
         "周六上午初二数学同步班", "一次性缴纳全年学费", "在职老师授课", "迎春杯冲刺集训营", "高端家政"]


def _key(fs):
    return sorted((f.rule_id, f.category) for f in fs)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(TERMS), st.lists(st.tuples(st.integers(0, 40), st.sampled_from(ZW)), max_size=6))
def test_zero_width_insertion_does_not_change_findings(text, inserts):
    s = text
    for pos, ch in inserts:
        pos = min(pos, len(s))
        s = s[:pos] + ch + s[pos:]
    fs = detect(s)
    assert _key(fs) == _key(detect(text))
    for f in fs:
        assert s[f.start : f.end] == f.text


def _fullwidth(s: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if 0x21 <= ord(c) <= 0x7E else ("\u3000" if c == " " else c) for c in s)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(TERMS + ["Online 直播课21:30结束", "BS真题 2小时/节 网课"]))
def test_fullwidth_does_not_change_findings(text):
    s = _fullwidth(text)
    assert _key(detect(s)) == _key(detect(text))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_string_never_raises_and_spans_hold(s):
    for f in detect(s):
        assert s[f.start : f.end] == f.text
        assert 0 <= f.score <= 1


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(TERMS + ["。", "，", " ", "\n", "\u200b", "\ud800", "\x00", "Ａ", "😀"]), max_size=30))
def test_mixed_input_spans_hold(parts):
    s = "".join(parts)
    fs = detect(s)
    for f in fs:
        assert s[f.start : f.end] == f.text
    assert fs == sorted(fs, key=lambda f: (f.start, f.end, f.rule_id))


@pytest.mark.parametrize(
    "s", ["", " ", "\ud800\udfff\ud83d", "\x00\x01\x1b[31m", "ﾃｽﾄ テスト 테스트 тест", "a" * 10000, "。" * 5000]
)
def test_bad_input_never_raises(s):
    assert isinstance(detect(s), list)
