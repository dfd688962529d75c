"""Rule packs: validation errors name file/rule/field; every rule's examples run; coverage."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from detectors import CATEGORIES, Detector, detect
from detectors.engine import RULES_DIR, RuleError, default_detector, load_rules

DET = default_detector()
RULES = DET.rules


@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_positive_examples_fire_the_rules_category(rule):
    for text in rule.positive:
        cats = {f.category for f in DET.detect(text)}
        assert rule.category in cats, f"{rule.id}: {text!r} gave {cats}"


@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_negative_examples_do_not_fire_the_rules_category(rule):
    for text in rule.negative:
        hits = [f for f in DET.detect(text) if f.category == rule.category]
        assert not hits, f"{rule.id}: {text!r} gave {hits}"


def test_every_category_has_a_rule_with_legal_basis():
    for cat in CATEGORIES:
        rules = [r for r in RULES if r.category == cat]
        assert rules, cat
        for r in rules:
            assert r.basis.document and r.basis.text and r.positive


def test_required_example_from_the_brief():
    fs = detect("幼小衔接拼音班火热招生")
    assert any(f.category == "preschool_subject" for f in fs)


def _pack(tmp_path: Path, body: str) -> Path:
    (tmp_path / "_lexicon.yaml").write_text((RULES_DIR / "_lexicon.yaml").read_text(encoding="utf-8"), "utf-8")
    p = tmp_path / "broken.yaml"
    p.write_text(textwrap.dedent(body), encoding="utf-8")
    return p


GOOD = """
rules:
  - id: x.ok
    category: photo_search
    severity: high
    basis: {document: D, article: A, text: T}
    patterns: [拍照搜题]
    examples: {positive: [拍照搜题], negative: []}
"""


@pytest.mark.parametrize(
    "old,new,field",
    [
        ("category: photo_search", "category: photos", "category"),
        ("severity: high", "severity: urgent", "severity"),
        ("basis: {document: D, article: A, text: T}", "basis: {document: D}", "basis.text"),
        ("patterns: [拍照搜题]", "patterns: [{anchors: [拍照], regex: '拍照(搜'}]", "patterns[0].regex"),
        ("patterns: [拍照搜题]", "patterns: []", "patterns"),
        ("patterns: [拍照搜题]", "patterns: [{regex: '拍照'}]", "patterns[0].anchors"),
        ("patterns: [拍照搜题]", "patterns: [$nosuchlist]", "patterns[0].anchors"),
        ("patterns: [拍照搜题]", "patterns: [{anchors: [拍照], regex: '{$nosuchlist}搜题'}]", "patterns[0].regex"),
        ("examples: {positive: [拍照搜题], negative: []}", "examples: {negative: []}", "examples"),
        ("severity: high", "severity: high\n    check: nosuchcheck", "check"),
        ("severity: high", "severity: high\n    scroe: 0.5", "scroe"),
    ],
)
def test_broken_rule_names_file_rule_and_field(tmp_path, old, new, field):
    p = _pack(tmp_path, GOOD.replace(old, new))
    with pytest.raises(RuleError) as e:
        load_rules(p)
    msg = str(e.value)
    assert "broken.yaml" in msg and "x.ok" in msg and repr(field) in msg, msg


def test_good_pack_loads_and_bad_yaml_is_reported(tmp_path):
    assert load_rules(_pack(tmp_path, GOOD))[0].id == "x.ok"
    p = _pack(tmp_path, "rules: [\n  - id: x\n")
    with pytest.raises(RuleError, match="broken.yaml: not valid YAML"):
        load_rules(p)
    p = _pack(tmp_path, GOOD + GOOD.replace("rules:\n", ""))
    with pytest.raises(RuleError, match="duplicate"):
        load_rules(p)


def test_concepts_expand_in_regexes_and_lists_are_defined_once(tmp_path):
    _pack(tmp_path, GOOD.replace("patterns: [拍照搜题]",
                                 "patterns: [{anchors: $things, regex: '{$things}搜题'}]"))
    (tmp_path / "_concepts.yaml").write_text("vocab:\n  things: [拍照, 扫描]\n", "utf-8")
    d = Detector(tmp_path)
    assert [f.text for f in d.detect("快来扫描搜题")] == ["扫描搜题"]
    (tmp_path / "_more.yaml").write_text("vocab:\n  things: [截图]\n", "utf-8")
    with pytest.raises(RuleError, match="already defined"):
        Detector(tmp_path)


def test_detector_from_a_directory(tmp_path):
    _pack(tmp_path, GOOD)
    d = Detector(tmp_path)
    assert [f.rule_id for f in d.detect("快来拍照搜题")] == ["x.ok"]


def test_findings_explain_pattern_context_and_clause():
    fs = detect("暑期语数外集训营火热报名")
    f = next(f for f in fs if f.category == "off_hours_schedule")
    text = " ".join(f.explanation)
    assert "命中" in text and "出现" in text and "违反" in text and "寒暑假" in f.basis
    assert f.title and f.title in text
    d = f.to_dict(explain=False)
    assert "explanation" not in d and d["category"] == "off_hours_schedule"


def test_negation_lowers_and_is_explained():
    d = Detector(threshold=0.0)
    f = next(f for f in d.detect("禁止开学前班") if f.category == "preschool_subject")
    assert f.score < 0.5 and any("禁止" in e for e in f.explanation)
