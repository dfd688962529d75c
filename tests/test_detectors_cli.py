"""`jianfu detect` contract, huge input, speed floor on 1 MB."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from detectors import detect

ROOT = Path(__file__).resolve().parent.parent


def _run(stdin: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jianfu", "detect", *args],
        input=stdin, capture_output=True, text=True, cwd=ROOT, timeout=120,
    )


def test_detect_command_adds_findings():
    lines = [{"text": "幼小衔接拼音班火热招生", "id": 7}, {"text": "本机构不开展学科类培训"}]
    p = _run("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines))
    assert p.returncode == 0, p.stderr
    out = [json.loads(line) for line in p.stdout.splitlines()]
    assert out[0]["id"] == 7 and out[0]["text"] == lines[0]["text"]
    f = out[0]["findings"][0]
    assert f["category"] == "preschool_subject"
    assert {"rule_id", "text", "start", "end", "score", "severity", "basis"} <= set(f)
    assert "explanation" not in f
    assert out[0]["text"][f["start"] : f["end"]] == f["text"]
    assert out[1]["findings"] == []


def test_detect_command_explain_and_bad_lines():
    p = _run('{"text": "拍照搜题秒出答案"}\nnot json\n{"x": 1}\n', "--explain")
    assert p.returncode == 1
    out = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(out) == 1 and out[0]["findings"][0]["explanation"]
    assert "line 2" in p.stderr and "line 3" in p.stderr


def test_huge_input_and_speed_floor():
    unit = "暑期语数外集训营火热报名，原价2980元现价99元。本机构不开展学科类培训。周末篮球课欢迎试听。\n" * 20
    unit += "这是一段普通的介绍文字，讲述机构的历史、环境与服务理念，没有任何违规内容。" * 200
    big = unit * max(1, int(1_000_000 / len(unit.encode())))
    t0 = time.perf_counter()
    fs = detect(big)
    dt = time.perf_counter() - t0
    assert fs and all(big[f.start : f.end] == f.text for f in fs[:200])
    assert len(big.encode()) / 1e6 / dt > 0.5  # a loose floor; bench/bench_detectors.py measures properly
