from crawler.encoding import decode_html

TEXT = "<html><body><p>幼小衔接拼音班火热招生，暑假数学提分，一次性缴纳全年学费</p></body></html>"


def test_gbk_without_any_charset_is_detected():
    d = decode_html(TEXT.encode("gbk"), "text/html")
    assert d.text == TEXT and d.encoding == "gb18030"


def test_gbk_mislabelled_as_utf8_is_not_trusted():
    d = decode_html(TEXT.encode("gbk"), "text/html; charset=utf-8")
    assert d.text == TEXT


def test_meta_charset_is_used():
    html = TEXT.replace("<html>", '<html><head><meta charset="gb2312"></head>')
    d = decode_html(html.encode("gb18030"), None)
    assert d.text == html and d.how == "meta"


def test_utf8_bom_and_big5():
    assert decode_html(b"\xef\xbb\xbf" + TEXT.encode(), None).how == "bom"
    big5 = "<html><body>補習班招生，歡迎報名參加課程</body></html>"
    d = decode_html(big5.encode("big5"), "text/html; charset=big5")
    assert d.text == big5


def test_garbage_never_raises():
    for body in (b"", b"\xff\xfe\xfd\x80\x81\xc3\x28", bytes(range(256)) * 10):
        assert isinstance(decode_html(body, "text/html; charset=no-such-charset").text, str)
