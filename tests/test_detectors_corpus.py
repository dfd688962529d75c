"""Quality on the dev corpus and on our own held-out texts (real assertions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detectors import detect

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"
HELDOUT = ROOT / "tests" / "data" / "detectors_heldout.jsonl"


def _rows(p: Path) -> list[dict]:
    return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


def _score(violations, compliant):
    flagged = cat_ok = 0
    for r in violations:
        fs = detect(r["text"])
        if fs:
            flagged += 1
            cat_ok += bool({f.category for f in fs} & set(r["categories"]))
        for f in fs:
            assert r["text"][f.start : f.end] == f.text
    passed = sum(1 for r in compliant if not detect(r["text"]))
    return flagged / len(violations), passed / len(compliant), cat_ok / max(1, flagged)


@pytest.mark.skipif(not (CORPUS / "dev_violations.jsonl").exists(), reason="dev corpus not present")
def test_dev_corpus():
    recall, passed, cat = _score(_rows(CORPUS / "dev_violations.jsonl"), _rows(CORPUS / "dev_compliant.jsonl"))
    assert recall >= 0.9, recall
    assert passed >= 0.95, passed
    assert cat >= 0.85, cat


def test_heldout_texts():
    rows = _rows(HELDOUT)
    v = [r for r in rows if r["categories"]]
    c = [r for r in rows if not r["categories"]]
    assert len(v) >= 25 and len(c) >= 12
    recall, passed, cat = _score(v, c)
    assert recall >= 0.9, recall
    assert passed >= 0.9, passed
    assert cat >= 0.85, cat
