import pytest

from crawler.extract import css_image_urls, extract

PAGE = """<html><head><title> 启明星 学堂 </title>
<meta property="og:image" content="/og.png"><link rel="stylesheet" href="/site.css">
<style>.hero{background:#fff url('/hero.jpg') no-repeat} @font-face{src:url(/f.woff2)}</style></head>
<body><div>幼小衔接<b>拼音</b>班</div><script>var hidden = "拍照搜题";</script>
<p>第二段<img src="a.png" data-src="lazy.png" data-original="orig.png" srcset="x1.png 1x, x2.png 2x" alt="海报"></p>
<picture><source srcset="p.webp 1x"><img src="p.png"></picture>
<div style="background-image:url(data:image/png;base64,iVBORw0KGgo=)">x</div>
<a href="/b.html#frag">b</a><a href="javascript:void(0)">j</a><a href="mailto:x@y">m</a>
<a href="https://other.example/">elsewhere</a></body></html>"""


def test_text_skips_scripts_and_keeps_blocks():
    c = extract(PAGE, "http://h/dir/page.html")
    assert c.title == "启明星 学堂"
    assert "幼小衔接拼音班" in c.text.splitlines()
    assert "拍照搜题" not in c.text


def test_every_kind_of_image_reference_is_found():
    c = extract(PAGE, "http://h/dir/page.html")
    for url in ("http://h/og.png", "http://h/hero.jpg", "http://h/dir/a.png", "http://h/dir/lazy.png",
                "http://h/dir/orig.png", "http://h/dir/x1.png", "http://h/dir/x2.png", "http://h/dir/p.webp",
                "http://h/dir/p.png"):
        assert url in c.images, url
    assert any(u.startswith("data:image/png;base64,") for u in c.images)
    assert not any(u.endswith(".woff2") for u in c.images)
    assert c.stylesheets == ["http://h/site.css"]


def test_links_are_absolute_without_fragments_or_scripts():
    c = extract(PAGE, "http://h/dir/page.html")
    assert c.links == ["http://h/b.html", "https://other.example/"]


def test_css_urls_skip_fonts_and_imports():
    assert css_image_urls("@import url(a.css); .x{background:url(b.gif)} @font-face{src:url(c.ttf)}") == ["b.gif"]


def test_malformed_markup_never_raises():
    for html in ("", "   ", "<", "<html><body><p>未闭合", "\x00\x01<div>", "<?xml version='1.0'?><a/>"):
        extract(html, "http://h/")


def deep_page(depth: int, opener: str = "<div>", closer: str = "</div>") -> str:
    return ("<html><head><title>深</title></head><body>" + opener * depth
            + "<p>最深处：周六幼小衔接拼音班<img src='deep.png'></p><script>var hidden = '<div>拍照搜题';</script>"
            + closer * depth + "<p>之后：拍照搜题秒出答案</p><a href='/after.html'>之后</a></body></html>")


@pytest.mark.parametrize("depth", [254, 256, 300, 1000, 2047, 2100, 6000])
def test_text_after_deep_nesting_is_kept(depth):
    """Issue 13.2: past ~255 nested elements (libxml2's limit) everything after was missing."""
    c = extract(deep_page(depth), "http://h/")
    lines = c.text.splitlines()
    assert "最深处：周六幼小衔接拼音班" in lines and lines[-2:] == ["之后：拍照搜题秒出答案", "之后"]
    assert "拍照搜题" not in c.text.replace("拍照搜题秒出答案", "")  # the script stays out
    assert c.links == ["http://h/after.html"] and c.images == ["http://h/deep.png"] and c.title == "深"


def test_unclosed_deep_nesting_and_quoted_angle_brackets():
    html = ("<html><body>" + "<div class='a>b'><span data-x=\"<i>\">" * 3000 + "<p>深处"
            + "<p>幼小衔接之后</p><a href=/x>链接</a><style>p{}</style>尾</body></html>")
    c = extract(html, "http://h/")
    assert "深处" in c.text and "幼小衔接之后" in c.text and c.text.endswith("链接尾") and c.links == ["http://h/x"]
