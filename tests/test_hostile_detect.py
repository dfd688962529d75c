"""Hostile input to the detectors and to ``jianfu detect``: any Unicode of any length, with or without
line breaks, never raises, and every span indexes the input (issue 13, items 1 and 5)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors import detect
from detectors.gate import _CHUNK

ROOT = Path(__file__).resolve().parent.parent

# every code point, lone surrogates included (a JSON "\ud800" escape decodes to one)
ANY_CHAR = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=())
VIOLATION = "幼小衔接拼音班火热招生"


def check_spans(text: str) -> None:
    for f in detect(text):
        assert 0 <= f.start < f.end <= len(text), f
        assert text[f.start : f.end] == f.text, f


@settings(max_examples=300, deadline=None)
@given(st.text(ANY_CHAR, max_size=400))
def test_detect_never_raises_on_any_short_text(text):
    check_spans(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([VIOLATION, "拍照搜题", "保过", "\n", " ", "\u200b", "·", "a", "１"]) | st.text(ANY_CHAR, max_size=8), max_size=60).map("".join))
def test_detect_never_raises_on_rule_words_mixed_with_anything(text):
    check_spans(text)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(unit=st.text(ANY_CHAR, min_size=1, max_size=30), breaks=st.booleans(),
       length=st.integers(min_value=_CHUNK - 64, max_value=3 * _CHUNK))
def test_detect_never_raises_on_long_text_with_or_without_line_breaks(unit, breaks, length):
    if not breaks:
        unit = unit.replace("\n", " ")
    text = (unit * (length // len(unit) + 1))[:length]
    if breaks:  # a few breaks, far apart: lines longer than a chunk either side
        text = text[: length // 3] + "\n" + text[length // 3 :] + "\n" + VIOLATION
    check_spans(text)


@pytest.mark.parametrize("n", [_CHUNK - 1, _CHUNK, _CHUNK + 1, 2 * _CHUNK + 17])
def test_one_line_longer_than_a_chunk_keeps_its_findings(n):
    """Issue 13.1: one line over 131,072 characters raised IndexError in detectors/gate.py."""
    filler = "这是一段普通的介绍文字。"
    text = (filler * (n // len(filler) + 1))[: n - len(VIOLATION)] + VIOLATION
    assert len(text) == n and "\n" not in text
    found = detect(text)
    assert any(f.category == "preschool_subject" and f.start >= n - len(VIOLATION) for f in found)
    check_spans(text)


@pytest.fixture(scope="module")
def zh_cn_locale(tmp_path_factory):
    """A real zh_CN.UTF-8 locale, compiled into a private directory with glibc's ``localedef`` (the
    Debian ``locales`` package, scripts/debian-packages.txt): no root and no system change needed."""
    where = tmp_path_factory.mktemp("locale")
    proc = subprocess.run(["localedef", "-i", "zh_CN", "-f", "UTF-8", str(where / "zh_CN.UTF-8")],
                          capture_output=True, text=True)
    if not (where / "zh_CN.UTF-8").is_dir():
        pytest.skip(f"cannot build zh_CN.UTF-8 with localedef (install Debian's locales): {proc.stderr[-300:]}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG", "PYTHONUTF8", "PYTHONIOENCODING"))}
    env |= {"LOCPATH": str(where), "LC_ALL": "zh_CN.UTF-8", "LANG": "zh_CN.UTF-8"}
    check = subprocess.run([sys.executable, "-c", "import locale, sys; locale.setlocale(locale.LC_ALL, '');"
                            "print(locale.getlocale()[0], sys.flags.utf8_mode)"], env=env, capture_output=True, text=True)
    assert check.stdout.split() == ["zh_CN", "0"], check.stdout + check.stderr  # the real locale, no UTF-8 mode
    return env


def test_detect_under_zh_cn_locale_reports_a_non_utf8_line_and_keeps_the_others(zh_cn_locale):
    """Issue 13.5: under zh_CN.UTF-8 one line that is not UTF-8 crashed `jianfu detect` and lost the rest."""
    stdin = (json.dumps({"text": VIOLATION, "id": 1}, ensure_ascii=False).encode() + b"\n"
             + b'{"text": "\xff\xfe\xc3\x28 gbk \xd3\xd7\xd0\xa1", "id": 2}\n'
             + json.dumps({"text": "拍照搜题秒出答案", "id": 3}, ensure_ascii=False).encode() + b"\n"
             + b'{"text": "lone \\ud800 surrogate ' + "保过".encode() + b'", "id": 4}\n')
    proc = subprocess.run([sys.executable, "-m", "jianfu", "detect"], input=stdin, capture_output=True,
                          cwd=ROOT, env=zh_cn_locale, timeout=120)
    stderr = proc.stderr.decode("utf-8")
    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines() == ["jianfu detect: line 2: not valid UTF-8 (byte 0xff at byte 11)"]
    out = [json.loads(line) for line in proc.stdout.decode("utf-8").splitlines()]
    assert [o["id"] for o in out] == [1, 3, 4]
    assert out[0]["findings"] and out[1]["findings"][0]["category"] == "photo_search"
    assert out[2]["text"] == "lone \ud800 surrogate 保过"
