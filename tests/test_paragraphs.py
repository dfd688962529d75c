"""Paragraph context: lines of one block are read together (detectors.paragraphs).

The OCR tests read generated ad images with the real default engine (rapidocr); each also checks
the line-by-line reading of the same image, so they show what joining changes.
"""

from __future__ import annotations

import pytest

from crawler.extract import extract
from demo_site import adgen
from detectors import detect
from detectors.images import image_findings, read_image
from detectors.model import Finding
from detectors.ocr import load_engine
from detectors.ocr.model import OcrLine, make_box
from detectors.paragraphs import Layout, continued_paragraphs, ocr_paragraphs, rendered_paragraphs


def line(text: str, left: float, top: float, right: float, bottom: float) -> OcrLine:
    return OcrLine(text, make_box([(left, top), (right, top), (right, bottom), (left, bottom)]), 0.9)


# -- the layout: joined text and the map back ------------------------------------------------------


def test_layout_joins_paragraph_lines_and_maps_spans_back():
    text = "标题\n机构不得利用节假日\n开展奥数竞赛培训\n中考保\n过班名额有限\nPython\nclass"
    layout = Layout.of(text, [[1, 2], [3, 4], [5, 6]], wrapped={2, 4, 6})
    assert layout.joined == "标题\n机构不得利用节假日开展奥数竞赛培训\n中考保过班名额有限\nPython class"
    # lines broken on purpose go on in a new clause (unless the line already ends a clause)
    on_purpose = Layout.of("作业不会拍一拍\n拍照搜题\n三秒出答案。\n免费下载", [[0, 1, 2, 3]])
    assert on_purpose.joined == "作业不会拍一拍，拍照搜题，三秒出答案。免费下载"
    s = layout.joined.index("保过")
    assert layout.pieces(s, s + 2) == [(3, 2, 3), (4, 0, 1)]
    assert text[slice(*layout.to_text(s, s + 2))] == "保\n过"
    s = layout.joined.index("n c")
    assert layout.pieces(s, s + 3) == [(5, 5, 6), (6, 0, 1)]  # the added space belongs to no line
    found = [Finding("guarantee_promise", "r", "保过", layout.joined.index("保过"), layout.joined.index("保过") + 2,
                     0.9, "high", "b")]
    (f,) = layout.findings(found)
    assert (f.start, f.end, f.text) == (text.index("保\n过"), text.index("保\n过") + 3, "保\n过")
    at = layout.joined.index("过班")
    (empty,) = layout.findings([Finding("guarantee_promise", "r", "", at, at, 0.9, "high", "b")])
    assert (empty.start, empty.end) == (text.index("过班"), text.index("过班"))


def test_every_span_of_the_joined_text_maps_back_to_its_own_characters():
    import random

    rng = random.Random(11)
    words = ["不得", "开展", "学科类", "培训", "Python", "class", "3", "岁", "。", "，", ""]
    for _ in range(200):
        lines = ["".join(rng.choice(words) for _ in range(rng.randint(0, 5))) for _ in range(rng.randint(1, 8))]
        text = "\n".join(lines)
        order = list(range(len(lines)))
        groups, k = [], 0
        while k < len(order):
            n = rng.randint(1, 3)
            groups.append(order[k:k + n])
            k += n
        layout = Layout.of(text, groups, wrapped={i for i in order if rng.random() < 0.5})
        for _ in range(10):
            a = rng.randint(0, len(layout.joined))
            b = rng.randint(a, len(layout.joined))
            got = "".join(lines[n][x:y] for n, x, y in layout.pieces(a, b))
            own = {p for st, n in zip(layout.seg_starts, layout.seg_lines, strict=True)
                   for p in range(st, st + len(lines[n]))}  # characters copied from a line
            assert got == "".join(layout.joined[p] for p in range(a, b) if p in own)
            if got:
                s, e = layout.to_text(a, b)
                assert got[0] == text[s] and got[-1] == text[e - 1]


def test_layout_without_paragraphs_is_the_text_itself():
    text = "一行\n两行"
    layout = Layout.of(text, [[0], [5, 6]])
    assert layout.joined == text and not layout.joins
    assert layout.pieces(1, 4) == [(0, 1, 2), (1, 0, 1)]


def test_non_contiguous_paragraph_keeps_its_own_lines():
    # two columns read row by row: left 0, right 1, left 2, right 3; the columns are the paragraphs
    text = "左一\n右一\n左二\n右二"
    layout = Layout.of(text, [[0, 2], [1, 3]], wrapped={2, 3})
    assert layout.joined == "左一左二\n右一右二"
    assert layout.pieces(1, 3) == [(0, 1, 2), (2, 0, 1)]


def test_negation_and_splits_work_across_the_lines_of_one_paragraph():
    text = "根据规定，校外培训机构不得利用节假日\n开展奥数竞赛培训"
    assert detect(text), "line by line the negation is lost (else this test shows nothing)"
    assert Layout.of(text, [[0, 1]], wrapped={1}).detect(detect) == []
    assert Layout.of(text, [[0, 1]]).detect(detect) == []  # a frame like 不得 reaches the next clause
    split = "本校郑重承诺：中考保\n过班名额有限"
    assert not detect(split)
    (f,) = Layout.of(split, [[0, 1]], wrapped={1}).detect(detect)
    assert f.category == "guarantee_promise" and split[f.start:f.end] == f.text and "\n" in f.text


# -- which lines are a paragraph -------------------------------------------------------------------


def test_ocr_geometry():
    para = [line("第一行文字很长很长", 10, 10, 500, 50), line("第二行短一些", 10, 80, 300, 120)]
    assert ocr_paragraphs(para) == ([[0, 1]], {1})  # the first line is full: the text wrapped
    slogan = [line("作业不会拍一拍", 80, 10, 400, 50), line("拍照搜题三秒出答案", 10, 80, 470, 120)]
    assert ocr_paragraphs(slogan) == ([[0, 1]], set())  # a shorter first line: broken on purpose
    # OCR boxes are up to half a character off at each end: a banner wrapped after 13½ characters
    # over 13½ more reads as wrapped by its text although its box is 1¼ line heights narrower
    banner = [line("1 元抢购初中全科诊断!清北", 34, 55, 521, 95), line("名师定制学习方案,限时免费领", 32, 121, 569, 165)]
    assert ocr_paragraphs(banner) == ([[0, 1]], {1})
    assert Layout.of("\n".join(x.text for x in banner), ocr_paragraphs(banner)).joined == \
        "1 元抢购初中全科诊断!清北名师定制学习方案,限时免费领"
    far = [line("第一块", 10, 10, 500, 50), line("第二块", 10, 200, 300, 240)]
    assert ocr_paragraphs(far).groups == [[0], [1]]
    heading = [line("大标题", 10, 10, 500, 110), line("正文", 10, 130, 300, 160)]
    assert ocr_paragraphs(heading).groups == [[0], [1]]
    beside = [line("左边", 10, 10, 100, 50), line("右边远处", 600, 80, 700, 120)]
    assert ocr_paragraphs(beside).groups == [[0], [1]]
    one_row = [line("不得开展", 10, 10, 170, 50), line("学科类培训", 200, 12, 400, 52)]
    assert ocr_paragraphs(one_row) == ([[0, 1]], {1})
    # a heading over two columns is glued to one column at most; each column is one paragraph
    cols = [line("标题标题标题标题", 10, 10, 700, 50),
            line("左栏第一行", 10, 80, 300, 120), line("右栏第一行", 400, 80, 700, 120),
            line("左栏第二行", 10, 150, 300, 190), line("右栏第二行", 400, 150, 700, 190)]
    groups = ocr_paragraphs(cols).groups
    assert sorted(map(sorted, groups)) == [[0, 1, 3], [2, 4]]


def test_rendered_blocks_stacked_like_lines_are_one_paragraph():
    text = "首页\n课程\n根据规定，校外培训机构不得利用节假日\n开展奥数竞赛培训\n联系我们"
    starts = [0, 3, 6, 25, 34]
    boxes = [{"start": starts[0], "end": 2, "box": [10, 0, 40, 24]},
             {"start": starts[1], "end": 5, "box": [10, 30, 40, 24]},
             {"start": starts[2], "end": 24, "box": [10, 100, 360, 24]},
             {"start": starts[3], "end": 33, "box": [10, 126, 160, 24]},
             {"start": starts[4], "end": 38, "box": [10, 300, 80, 24]}]
    assert rendered_paragraphs(text, boxes) == ([[2, 3]], {3})  # the short menu items are not joined


def test_html_lines_around_one_br_are_one_paragraph():
    content = extract("<html><body><ul><li>首页</li><li>课程</li></ul>"
                      "<p>根据规定，校外培训机构不得利用节假日<br>开展奥数竞赛培训</p>"
                      "<p>第一段<br><br>第二段</p></body></html>", "http://127.0.0.1/")
    assert content.text.split("\n") == ["首页", "课程", "根据规定，校外培训机构不得利用节假日", "开展奥数竞赛培训",
                                        "第一段", "第二段"]
    assert content.continued_lines == [3]
    assert continued_paragraphs(content.continued_lines) == [[2, 3]]
    assert continued_paragraphs(content.continued_lines, offset=1) == [[3, 4]]
    assert detect(content.text)
    assert Layout.of(content.text, continued_paragraphs(content.continued_lines)).detect(detect) == []


def test_a_line_break_in_the_page_source_is_white_space():
    """A browser shows a paragraph typed over two source lines as one line (the line after a
    ``<br>`` written on its own source line still continues it); ``<pre>`` keeps its lines."""
    content = extract("<html><body><p>教育局要求：各类机构严禁面向学龄前儿童举办\n学前班、幼小衔接班</p>"
                      "<p>提示函明确要求，各培训机构不得发布<br>\n  “保证提高分数”等承诺</p>"
                      "<pre>第一行\n第二行</pre></body></html>", "http://127.0.0.1/")
    lines = content.text.split("\n")
    assert lines[0] == "教育局要求：各类机构严禁面向学龄前儿童举办 学前班、幼小衔接班"
    assert lines[1:] == ["提示函明确要求，各培训机构不得发布", "“保证提高分数”等承诺", "第一行", "第二行"]
    assert content.continued_lines == [2]
    assert Layout.of(content.text, continued_paragraphs(content.continued_lines)).detect(detect) == []


# -- real OCR of generated images -----------------------------------------------------------------


@pytest.fixture(scope="module")
def engine():
    return load_engine("rapidocr")


def test_notice_image_is_not_flagged(engine):
    ad = adgen.render(["根据规定，校外培训机构不得利用节假日", "开展奥数竞赛培训，违者严肃处理"], font_size=36)
    reading = read_image(ad.data, engine)
    assert len(reading.lines) == 2
    assert detect(reading.text), "read line by line, the notice is flagged (the false positive fixed here)"
    assert image_findings(reading) == []


def test_violation_split_over_two_lines_is_flagged_with_both_boxes(engine):
    ad = adgen.render(["本校郑重承诺：中考保", "过班名额有限，先到先得"], font_size=40)
    reading = read_image(ad.data, engine)
    assert len(reading.lines) == 2
    assert not detect(reading.text), "read line by line, the split words are missed"
    (finding, boxes), = image_findings(reading)
    assert finding.category == "guarantee_promise"
    assert reading.text[finding.start:finding.end] == finding.text
    assert len(boxes) == 2  # exactly the two lines its words are on
    for box, (top, bottom) in zip(boxes, [(ad.boxes[0][1], ad.boxes[0][3]), (ad.boxes[1][1], ad.boxes[1][3])],
                                  strict=True):
        ys = [p[1] for p in box]
        assert min(ys) < bottom and max(ys) > top


def test_slogan_lines_keep_their_own_clauses(engine):
    """A short first line over a longer one was broken on purpose: its negation ("不会") must not
    reach the next line's words (the demo site's app poster)."""
    ad = adgen.render(["作业不会拍一拍", "拍照搜题3秒出答案"], font_size=56)
    reading = read_image(ad.data, engine)
    assert len(reading.lines) == 2
    assert ocr_paragraphs(reading.lines) == ([[0, 1]], set())
    assert {f.category for f, _ in image_findings(reading)} == {"photo_search"}


def test_two_separate_blocks_are_not_joined(engine):
    ad = adgen.render(["校外培训机构不得利用节假日", "", "", "开展奥数竞赛培训"], font_size=40)
    reading = read_image(ad.data, engine)
    assert len(reading.lines) == 2
    assert ocr_paragraphs(reading.lines).groups == [[0], [1]]
    found = image_findings(reading)
    assert [f.category for f, _ in found] == ["competition_ranking"]
    assert len(found[0][1]) == 1


# -- a rendered page, in real Chromium ---------------------------------------------------------------


def test_rendered_notice_lines_are_one_paragraph_in_chromium():
    """The browser's own text blocks (crawler.render.TEXT_JS): a notice whose lines are stacked
    <div>s is one paragraph; a vertical menu and a separate block below are not joined to it."""
    from playwright.sync_api import sync_playwright

    from crawler.render import CHROMIUM_ARGS, TEXT_JS, chromium_executable, text_and_boxes

    exe = chromium_executable()
    assert exe, "Chromium is missing (/usr/bin/chromium): browser tests must run in CI"
    html = """<html><body style="font-size:20px;line-height:1.5;margin:20px">
      <div>首页</div><div>课程</div><div>师资</div>
      <div style="margin-top:40px;width:600px">
        <div>根据规定，各校外培训机构一律不得利用节假日</div>
        <div>开展奥数竞赛培训，违者严肃处理。</div>
      </div>
      <p style="margin-top:60px">本中心开设少儿美术、书法课程。</p>
    </body></html>"""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.set_content(html)
            found = page.evaluate(TEXT_JS, {"maxChars": 100_000})
        finally:
            browser.close()
    text, boxes = text_and_boxes(found["blocks"])
    lines = text.split("\n")
    assert lines[:3] == ["首页", "课程", "师资"] and len(lines) == 6
    assert rendered_paragraphs(text, boxes).groups == [[3, 4]]
    assert detect(text), "line by line the notice is flagged"
    assert Layout.of(text, rendered_paragraphs(text, boxes)).detect(detect) == []
