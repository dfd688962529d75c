"""Precedents and the suspected (疑似) tier (detectors.precedents).

The matcher is tested on our own examples, not corpus texts; the shipped library is checked to
hold only the tuning part of the corpora.
"""

from __future__ import annotations

import json
import random
import re

import pytest

from bench import corpus
from detectors.engine import Detector, default_detector
from detectors.model import Finding
from detectors.normalize import char_fold
from detectors.precedents import (
    SUSPECTED,
    Matcher,
    Precedent,
    PrecedentDetector,
    _key,
    all_windows,
    candidate_windows,
    default_precedent_detector,
    load_library,
    reviewed_precedents,
)
from store.db import Store
from tests.conftest import jianfu

CJK = re.compile(r"[\u4e00-\u9fff]")

OWN = [
    Precedent("own-1", "报名即送学习机，考不上重点高中学费全退", "violation", ("guarantee_promise",),
              "https://example.org/case/1", "某区市场监管局处罚决定书", "某区市场监管局", "责令停止发布，罚款三万元"),
    Precedent("own-2", "少儿口才表演周末体验课，欢迎家长带孩子试听", "compliant", (), "https://example.org/ok/2",
              "某艺术培训学校招生简章"),
    Precedent("own-3", "寒假集训营每天八小时刷题，开学直接冲进年级前十", "violation", ("off_hours_schedule",),
              "https://example.org/case/3", "某市教育局通报", "某市教育局", "责令整改"),
]
# said again in other words: no rule of the default packs fires on it (checked below)
UNSEEN = "报名即送学习机，没考上重点高中学费全部退还"


@pytest.fixture(scope="module")
def rules():
    return default_detector()


@pytest.fixture(scope="module")
def no_rules(tmp_path_factory):
    """A real rule engine with no rule packs: the suspected tier on its own, whatever the packs
    catch today."""
    return Detector(tmp_path_factory.mktemp("no-rules"))


def test_matcher_ranks_our_own_examples():
    m = Matcher(OWN)
    near = m.nearest("报名就送学习机！考不上重点高中学费全退")
    assert near.precedent.id == "own-1" and near.similarity > 0.6
    assert m.nearest("今天天气晴，最高气温二十度").similarity < 0.1
    assert m.nearest("少儿口才表演体验课欢迎试听", violation=False).precedent.id == "own-2"
    assert m.nearest("寒假集训营天天刷题", category="off_hours_schedule").precedent.id == "own-3"
    # numbers do not decide: 8 or 10 hours is the same wording
    assert m.similarities("寒假集训营每天8小时刷题")[2] == pytest.approx(m.similarities("寒假集训营每天10小时刷题")[2])


def test_a_text_close_to_a_precedent_with_no_rule_is_suspected_with_a_chinese_citation(no_rules):
    d = PrecedentDetector(no_rules, OWN, wording=False)
    (f,) = d.detect(UNSEEN)
    assert f.tier == SUSPECTED and f.category == "guarantee_promise" and f.rule_id == "precedent:own-1"
    assert UNSEEN[f.start:f.end] == f.text
    assert f.precedent.startswith("与某区市场监管局查处的案例相似（来源：某区市场监管局处罚决定书）")
    assert "“报名即送学习机，考不上重点高中学费全退”" in f.precedent and "罚款三万元" in f.precedent
    assert all(CJK.search(line) for line in f.explanation)
    assert f.explanation[0].startswith("疑似效果保证承诺")
    # a different sentence beside it is not pulled in
    text = "周末美术兴趣班欢迎报名。" + UNSEEN + "。地址：海淀区中关村大街。"
    (f,) = d.detect(text)
    assert f.text == UNSEEN


def test_rule_findings_cite_their_closest_precedent_of_their_category(rules):
    text = "中考保过班名额有限"
    found = rules.detect(text)
    assert found
    d = PrecedentDetector(rules, OWN, wording=False)
    cited = d.detect(text)
    assert [f.rule_id for f in cited] == [f.rule_id for f in found]
    for f in cited:
        assert f.tier == "rule"
        if f.category == "guarantee_promise":
            assert f.precedent.startswith("同类：某区市场监管局查处的案例") or f.precedent.startswith("与某区")
            assert f.explanation[-1] == f"先例：{f.precedent}"


def test_dismissed_findings_teach_the_matcher_what_not_to_match(no_rules):
    d = PrecedentDetector(no_rules, OWN, wording=False)
    assert d.detect(UNSEEN)
    dismissed = reviewed_precedents([{"id": "f1", "status": "dismissed", "category": "guarantee_promise",
                                      "text": "学费全部退还", "context": "首页\n" + UNSEEN + "\n联系我们",
                                      "url": "http://127.0.0.1/a", "institution": "某机构"}])
    assert dismissed[0].text == UNSEEN and dismissed[0].verdict == "compliant"
    assert d.with_precedents(dismissed).detect(UNSEEN) == []


def test_a_confirmed_finding_becomes_a_precedent(tmp_path, no_rules):
    page = "首页\n秋季新课：本中心独家押题，期末不进前三免费重读一学期\n联系我们"
    words = "独家押题"
    store = Store(tmp_path)
    scan = store.begin_scan(["http://127.0.0.1/"])
    f = Finding("guarantee_promise", "own.rule", words, page.index(words), page.index(words) + len(words), 0.9,
                "high", "b")
    (fid,) = store.save_findings(scan, "http://127.0.0.1/", "text", page, [f], institution="某培训中心")
    later = "期末不进班级前三，免费重读一学期"
    d = PrecedentDetector(no_rules, OWN, wording=False)
    assert d.detect(later) == []
    assert store.reviewed_findings() == []
    store.set_status([fid], "confirmed")
    (p,) = reviewed_precedents(store.reviewed_findings())
    assert p.text == "秋季新课：本中心独家押题，期末不进前三免费重读一学期" and p.origin == "confirmed"
    (s,) = d.with_precedents([p]).detect(later)
    assert s.tier == SUSPECTED and s.category == "guarantee_promise"
    assert s.precedent.startswith("与调查人员已确认的违规发现相似（某培训中心 http://127.0.0.1/）")
    store.close()


def test_review_then_detect_and_findings_on_the_command_line(tmp_path, no_rules):
    page = "首页\n秋季新课：本中心独家押题，期末不进前三免费重读一学期\n联系我们"
    words = "独家押题"
    store = Store(tmp_path)
    scan = store.begin_scan(["http://127.0.0.1/"])
    f = Finding("guarantee_promise", "own.rule", words, page.index(words), page.index(words) + len(words), 0.9,
                "high", "b")
    (fid,) = store.save_findings(scan, "http://127.0.0.1/", "text", page, [f], institution="某培训中心")
    store.close()
    proc = jianfu("review", fid, "--store", str(tmp_path), "--status", "confirmed")
    assert proc.returncode == 0, proc.stderr
    line = json.dumps({"text": "寒假新课：我们独家押题，期末不进前三免费重读一学期"}, ensure_ascii=False)
    proc = jianfu("detect", "--store", str(tmp_path), input=line + "\n")
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)["findings"]
    assert any("调查人员已确认的违规发现" in x["precedent"] for x in found)
    # a suspected finding saved by a scan is listed with its tier and citation
    store = Store(tmp_path)
    suspected = [Finding(**{k: v for k, v in x.items() if k != "explanation"}) for x in found]
    store.save_findings(scan, "http://127.0.0.1/b", "text", json.loads(line)["text"], suspected)
    store.save_findings(scan, "http://127.0.0.1/c", "text", UNSEEN, PrecedentDetector(no_rules, OWN, wording=False).detect(UNSEEN))
    store.close()
    rows = [json.loads(x) for x in jianfu("findings", "--store", str(tmp_path), "--format", "jsonl").stdout.splitlines()]
    assert {r["tier"] for r in rows} >= {"rule"}
    assert any(r["precedent"] and "调查人员已确认" in r["precedent"] for r in rows)
    table = jianfu("findings", "--store", str(tmp_path)).stdout
    assert "调查人员已确认" in table
    suspected_only = jianfu("findings", "--store", str(tmp_path), "--tier", "suspected", "--format", "jsonl").stdout
    assert [json.loads(x)["url"] for x in suspected_only.splitlines()] == ["http://127.0.0.1/c"]
    assert "疑似" in table and "与某区市场监管局查处的案例相似" in table


def test_the_shipped_library_holds_only_the_tuning_part():
    library = load_library()
    assert len(library) >= 100
    assert {p.verdict for p in library} == {"violation", "compliant"}
    for p in library:
        assert p.source_url and p.text
        assert not corpus.is_sealed_source(p.source_url), p.id
        assert (p.verdict == "violation") == bool(p.categories)
    assert len({p.id for p in library}) == len(library)


def test_a_library_text_does_not_count_for_itself():
    library = load_library()
    case = next(p for p in library if p.violation and len(p.text) >= 12)
    d = PrecedentDetector(default_detector(), library, exclude=lambda p: p.source_url == case.source_url, wording=False)
    m = d.suspect(case.text)
    assert m is None or m.precedent.source_url != case.source_url
    assert default_precedent_detector().matcher.nearest(case.text).similarity > 0.99


def test_the_window_gate_never_hides_a_suspect(monkeypatch):
    """candidate_windows is a necessary condition: every sentence whose exact similarity reaches
    the threshold is among the candidates, also when a long text is read in pieces (cut at
    sentence ends), and every candidate is a window of the reference enumeration."""
    library = load_library()
    m = Matcher(library)
    rng = random.Random(5)
    pieces = [p.text for p in library] + ["今天天气晴", "欢迎家长咨询", "地址：海淀区", "每周六上午九点", "学费480元"]
    for at in (0.1, 0.2, 0.3):
        text = "\n".join("".join(rng.choice("。，；") + rng.choice(pieces) for _ in range(rng.randint(1, 4)))
                         for _ in range(120))
        folded = char_fold(text)
        windows = set(all_windows(folded))
        cands = set(candidate_windows(m, folded, at))
        with monkeypatch.context() as mp:
            mp.setattr("detectors.precedents.CHUNK_CHARS", 500)
            assert set(all_windows(folded)) == windows  # cut at sentence ends: the same windows
            chunked = set(candidate_windows(m, folded, at))
        assert cands <= windows and chunked <= windows
        for mt in re.finditer(r"[^。！？!?；;\n]+", folded):
            if len(_key(mt.group())) < 6:
                continue
            sims = m.similarities_of_key(_key(mt.group()))[m.violation & m.wordy]
            if float(sims.max()) >= at + 1e-6:
                assert (mt.start(), mt.end()) in cands and (mt.start(), mt.end()) in chunked, mt.group()
