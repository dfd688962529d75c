"""The bundled demo site, read the way the crawler reads it, and variants of its hard cases.

The variants are not the demo strings: they check that the rules generalise (table rows as one
unit, negated employing verbs, contest-less camps, collective prohibitions, crash-course hours).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from crawler.extract import extract
from detectors import detect

ROOT = Path(__file__).resolve().parent.parent
SITES = ROOT / "demo_site" / "sites"

EXPECTED = {
    ("qiming", "index.html"): {"preschool_subject", "off_hours_schedule"},
    ("qiming", "courses.html"): {"preschool_subject", "guarantee_promise", "off_hours_schedule"},
    ("qiming", "fees.html"): {"prepaid_fees"},
    ("qiming", "news.html"): {"competition_ranking"},
    ("xuebatong", "index.html"): {"advance_teaching", "competition_ranking"},
    ("xuebatong", "app.html"): {"photo_search"},
    ("xuebatong", "courses.html"): {"competition_ranking", "off_hours_schedule", "guarantee_promise", "false_claim"},
    ("xuebatong", "teachers.html"): {"teacher_qualification"},
    ("xuebatong", "honor.html"): {"competition_ranking"},
}


def _page_text(site: str, name: str) -> str:
    c = extract((SITES / site / name).read_text(encoding="utf-8"), "http://demo/")
    return c.title + "\n" + c.text


@pytest.mark.parametrize("page", sorted(EXPECTED), ids=lambda p: "/".join(p))
def test_violating_pages(page):
    cats = {f.category for f in detect(_page_text(*page))}
    assert EXPECTED[page] <= cats, f"{page}: missing {EXPECTED[page] - cats}"


@pytest.mark.parametrize("site", ["caihong", "feiyue"])
def test_compliant_sites_have_no_findings(site):
    for f in sorted((SITES / site).glob("*.html")):
        found = [(x.category, x.text) for x in detect(_page_text(site, f.name))]
        assert found == [], (f.name, found)


@pytest.mark.parametrize(
    ("text", "category"),
    [
        # a timetable row is one unit: class name in one cell, the rest day in another
        ("初二物理培优班 | 八年级 | 星期日下午 2:00-4:00 |", "off_hours_schedule"),
        ("高一化学提高班 | 高一 | 周末全天 |", "off_hours_schedule"),
        # a subject timetable row ending after 20:30 (no word 课/班 in the row)
        ("初中数学思维 | 七至八年级 | 晚上7:30-9:15 |", "off_hours_schedule"),
        # a crash course: many hours a day only fit in a holiday
        ("五一假期英语语法精讲，5天30课时", "off_hours_schedule"),
        ("数理化三科8天48小时特训", "off_hours_schedule"),
        # a lone 原价 with a lower selling price elsewhere in the sentence
        ("物理冲刺班到手价599元，原价2999元", "false_claim"),
        # a plain camp is a competition when the sentence speaks of contests
        ("英语冬令营期末举行单词竞赛并排名，颁发证书", "competition_ranking"),
    ],
)
def test_generalised_violations(text, category):
    assert category in {f.category for f in detect(text)}, [(f.category, f.text) for f in detect(text)]


@pytest.mark.parametrize(
    "text",
    [
        "本机构不招聘、不聘请中小学在职教师，所有老师均持证上岗。",
        "我们从未聘用任何在职教师授课。",
        "学科类培训机构、托管机构和家政公司，一律不得以任何名义开展学科类培训。",
        "少儿美术班 | 5-10岁 | 周六上午 9:00-10:30 |",
        "篮球训练营 | 8-12岁 | 暑假每天上午，共10天30小时 |",
        "暑期机器人编程夏令营，营员分组完成搭建作品。",
        "青少年宫冬令营开展滑雪和冰雕体验，安全第一。",
        "学校图书馆周六开放，欢迎学生借阅。",
    ],
)
def test_generalised_compliant(text):
    assert detect(text) == [], [(f.category, f.rule_id, f.text) for f in detect(text)]
