"""The wording model (detectors.wording): the suspected tier's second source, for wordings no rule describes."""

from __future__ import annotations

import random

import numpy as np
import pytest

from detectors.engine import Detector, default_detector
from detectors.model import CATEGORIES
from detectors.normalize import fold
from detectors.precedents import SUSPECTED, PrecedentDetector, default_precedent_detector
from detectors.wording import RULE_ID, WordingModel, _margins, default_wording_model, grams

MODEL = default_wording_model()

# Violations worded for this test (none is in the training texts, checked below), on which no rule
# fires and no precedent is close: the model is their only reader.
UNSEEN = [
    "开学前把新课本上的重点难点全部过一遍，孩子上课就能游刃有余",
    "初三最后一百天，跟着我们的节奏冲刺，目标重点高中",
    "学员去年中考平均分比全区高出二十多分",
]
# Everyday sentences of a page: never suspected by the model.
EVERYDAY = [
    "今天下午三点小区停水，请居民提前储水",
    "本周六上午社区组织义务植树活动",
    "市图书馆暑期开放时间调整为上午九点至晚上八点",
    "学校要求家长配合做好孩子假期安全教育",
    "少儿美术班本周作品展示，欢迎家长参观",
    "篮球训练营每周二、四下午四点半开始，地点在体育馆",
    "首页 | 联系我们 | 课程介绍 | 师资团队 | 常见问题",
    "北京今天多云，最高气温22℃，最低气温3℃，北风3到4级",
]


def test_the_package_ships_a_model():
    assert isinstance(MODEL, WordingModel)
    assert set(MODEL.categories) <= set(CATEGORIES) and len(MODEL.categories) >= 8
    assert 0.5 < MODEL.threshold_probability < 1


def test_the_shipped_model_was_trained_on_the_texts_in_the_repository():
    """Changing the rules' examples, the pitch lists or the corpora's tuning part changes what the
    model should have learnt from: retrain with ``make wording``."""
    from bench.train_wording import digest, training_rows

    rows = training_rows()
    assert digest(rows) == MODEL.digest, "the wording model is stale: run `make wording`"
    assert len(rows) == MODEL.trained_on


def test_the_test_texts_are_not_training_texts():
    from bench.train_wording import training_rows

    trained = {t for t, _, _ in training_rows()}
    assert not (set(UNSEEN) | set(EVERYDAY)) & trained


def _reference(codes: np.ndarray) -> np.ndarray:
    g = grams(codes)
    n = np.bincount(g.sentence, minlength=len(g.starts))
    total = np.bincount(g.sentence, weights=MODEL.weights[g.bucket], minlength=len(g.starts))
    return MODEL.intercept + total / np.sqrt(np.maximum(n, 1))


def test_the_fused_scores_are_the_sums_over_the_grams():
    rng = random.Random(7)
    alphabet = "孩子暑假数学提分班报名名校老师上课学员0123456789abcZ%¥。！？；;\n|，、 "
    for _ in range(400):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        codes = np.frombuffer(fold(text).encode("utf-32-le"), dtype=np.uint32)
        starts, stops, letters, margin = _margins(codes, MODEL.weights, MODEL.intercept)
        g = grams(codes)
        assert starts.tolist() == g.starts.tolist() and stops.tolist() == g.stops.tolist()
        assert letters.tolist() == g.letters.tolist()
        assert np.allclose(margin, _reference(codes), rtol=0, atol=1e-9), text


def test_a_sentence_scores_in_a_page_as_it_does_alone():
    """The unit scored in a page is the sentence, the unit trained on is the text: one sentence alone
    gets the same margin either way, wherever it stands in a page."""
    page = "本周作品展示。\n" + "。".join(UNSEEN) + "。\n地址：海淀区。"
    folded = fold(page)
    found = {folded[s.start : s.end]: s.score for s in MODEL.suspects(folded)}
    for text in UNSEEN:
        assert fold(text) in found
        assert found[fold(text)] == round(1 / (1 + np.exp(-MODEL.margin(text))), 2)


def test_unseen_wordings_become_suspected_findings_with_a_chinese_explanation():
    rules = default_detector()
    det = default_precedent_detector()
    for text in UNSEEN:
        assert rules.detect(text) == [], text
        (f,) = det.detect(text)
        assert f.tier == SUSPECTED and f.rule_id == RULE_ID and f.category in CATEGORIES
        assert text[f.start : f.end] == f.text == text
        assert f.explanation[0].startswith("疑似") and "需人工核实" in f.explanation[0]
        words = f.explanation[1]
        assert words.startswith("起作用的用语：“")
        assert all(w in fold(text) for w in words.removeprefix("起作用的用语：").strip("“”").split("”“"))
        assert f.score >= MODEL.threshold_probability and f.title.startswith("疑似")


def test_a_sentence_that_warns_or_comments_is_not_suspected():
    """The same wording, said by somebody warning parents or commenting, is not an advert."""
    rules = default_detector()
    det = default_precedent_detector()
    gated = 0
    for text in UNSEEN:
        for said in (f"专家提醒，{text}这类说法不可取", f"家长不要相信“{text}”"):
            assert rules.detect(said) == [], said
            assert [f for f in det.detect(said) if f.rule_id == RULE_ID] == [], said
            gated += bool(MODEL.suspects(fold(said)))  # the model alone would have suspected it
    assert gated, "no case where the speaker cue is what keeps the sentence out"


def test_everyday_sentences_are_never_suspected():
    det = default_precedent_detector()
    for text in EVERYDAY:
        assert det.detect(text) == [], text
    page = "\n".join(EVERYDAY * 20)
    assert MODEL.suspects(fold(page)) == []


def test_a_sentence_a_rule_already_holds_is_not_suspected_again():
    text = "暑假提前学完初一上册数学。" + UNSEEN[0]
    found = default_precedent_detector().detect(text)
    rules = [f for f in found if f.tier == "rule"]
    assert rules and all(f.end <= text.index(UNSEEN[0]) for f in rules)
    assert [f.text for f in found if f.tier == SUSPECTED] == [UNSEEN[0]]


def test_without_a_model_the_tier_has_only_precedents(tmp_path):
    det = PrecedentDetector(Detector(tmp_path), wording=False)
    assert all(f.rule_id != RULE_ID for t in UNSEEN for f in det.detect(t))


@pytest.mark.parametrize("text", ["", "。。。", "\n\n", "a", "报名" * 5000, "数学。" * 30000])
def test_odd_texts(text):
    folded = fold(text)
    out = MODEL.suspects(folded)
    assert all(0 <= s.start < s.end <= len(text) for s in out)


def test_authored_training_sentences_parse(tmp_path):
    from bench.train_wording import AUTHORED, authored_rows

    rows = authored_rows()
    assert AUTHORED.exists() and rows
    assert {y for _, y, _ in rows} == {0, 1}
    bad = tmp_path / "bad.txt"
    bad.write_text("# comment\nnot_a_category 这是一句话\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.txt:2"):
        authored_rows(bad)


def test_gathered_texts_in_the_repository_are_their_tuning_part_only(tmp_path):
    """``bench/data/external_tuning.jsonl`` holds only the tuning side of the 60/40 split by source
    (the first byte of the SHA-1 of the source URL, mod 5, is 2 or more), each text with its source,
    none of them a text of the shared corpora (whose own split stays theirs)."""
    import hashlib
    import json

    from bench import corpus
    from bench.train_wording import EXTERNAL, external_rows

    lines = [json.loads(line) for line in EXTERNAL.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(lines) == len(external_rows()) > 500
    corpus_texts = {r.text for _, vf, cf in corpus.SETS for r in corpus.load(vf) + corpus.load(cf)}
    for d in lines:
        assert d["source_url"] and d["text"] not in corpus_texts
        assert hashlib.sha1(d["source_url"].encode()).digest()[0] % 5 >= 2, d["source_url"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "一句话", "categories": ["no_such_category"], "source_url": "x"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        external_rows(bad)
