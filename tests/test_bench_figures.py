"""The benchmark figures API: ``bench.figure`` and ``python -m bench --json FILE``."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

import bench
from bench.__main__ import write_json

ROOT = Path(__file__).resolve().parents[1]


def test_figure_records_rounded_numbers_and_returns_the_value():
    bench.FIGURES.clear()
    assert bench.figure("demo.ratio", 0.123456789) == 0.123456789
    bench.figure("demo.count", 500)
    bench.figure("demo.broken", math.nan)
    bench.figure("demo.flag", True)
    assert bench.FIGURES == {"demo.ratio": 0.1235, "demo.count": 500, "demo.broken": None, "demo.flag": 1}


@pytest.mark.parametrize("name", ["ratio", "demo ratio", "demo.rat-io", ""])
def test_figure_names_are_area_dot_what(name):
    with pytest.raises(ValueError):
        bench.figure(name, 1.0)


def test_write_json_is_one_flat_object(tmp_path):
    bench.FIGURES.clear()
    bench.figure("crawl.http_vs_bare", 0.8)
    bench.figure("ocr.banner_median_s", 0.05)
    out = tmp_path / "figures.json"
    write_json(str(out))
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["crawl.http_vs_bare"] == 0.8 and doc["ocr.banner_median_s"] == 0.05
    assert doc["bench.cpu_count"] >= 1
    assert all(not isinstance(v, dict | list) for v in doc.values())


def test_cli_writes_json_even_when_no_module_matches(tmp_path):
    out = tmp_path / "f.json"
    proc = subprocess.run([sys.executable, "-m", "bench", "no-such-benchmark", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert set(doc) == {"bench.finished_at", "bench.cpu_count", "bench.load_avg_1m"}
