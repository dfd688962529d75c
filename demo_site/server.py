"""Serve the demo institutions on 127.0.0.1, one port per site, in background threads.

``python -m demo_site.server`` runs them in the foreground (ports from 8801 unless
``--port-base``); tests use ``DemoSites`` as a context manager with free ports.
Hostile routes (resets, non-HTML, bad bytes, traps, oversize and gzip bombs, slow pages, broken
images, redirect and meta-refresh loops, a redirect to ``file:``, deep nesting, one huge line) live
on the ``hostile`` site, which the demo does not scan; ``hostile-robots`` has a robots.txt that
answers 503 (RFC 9309: disallow everything) until its handler's ``robots_status`` is changed.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import socket
import threading
import time
from collections.abc import Callable
from email.message import Message
from email.utils import formatdate, parsedate_to_datetime
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from demo_site.banners import render_banner, tiny_gif

SITES_DIR = Path(__file__).with_name("sites")

INSTITUTIONS = {
    "qiming": "启明星学堂",
    "xuebatong": "学霸通在线",
    "caihong": "彩虹艺术中心",
    "feiyue": "飞跃体育编程俱乐部",
}
# Institutions whose pages need a browser (script-built page, lazy image, pop-up ad, a notice that
# appears only after load); not part of the plain demo scan. See crawler/render.py.
RENDER_SITES = {"xingguang": "星光少儿在线"}
# Test hooks for hostile routes (``"crash"``: called when /render/crash.html is requested).
HOOKS: dict[str, Callable[[], None]] = {}
# Pages served in GBK with no charset anywhere (header or meta): the crawler must detect it.
GBK_PAGES = {("qiming", "/fees.html")}
REDIRECTS = {("qiming", "/old-courses"): (301, "/courses.html"), ("feiyue", "/old"): (302, "/courses.html")}
BANNERS: dict[tuple[str, str], tuple[list[str], tuple[int, int], str, str, str]] = {
    ("qiming", "/img/banner-preschool.png"): (["幼小衔接拼音识字班火热招生", "一次性缴纳全年学费享八折"], (960, 240), "#c0392b", "#ffffff", "PNG"),
    ("qiming", "/img/og-share.png"): (["启明星学堂"], (600, 315), "#2c3e50", "#f1c40f", "PNG"),
    ("xuebatong", "/img/hero-app.png"): (["拍照搜题秒出答案", "学霸通APP免费下载"], (1200, 300), "#2980b9", "#ffffff", "PNG"),
    ("xuebatong", "/img/lazy-cup.png"): (["希望杯数学集训营", "冲刺一等奖"], (800, 200), "#8e44ad", "#ffffff", "PNG"),
    ("xuebatong", "/img/app-poster.png"): (["作业不会拍一拍", "拍照搜题3秒出答案"], (640, 320), "#16a085", "#ffffff", "PNG"),
    ("xuebatong", "/img/app-poster.webp"): (["作业不会拍一拍", "拍照搜题3秒出答案"], (640, 320), "#16a085", "#ffffff", "WEBP"),
    ("caihong", "/img/banner-art.png"): (["周末少儿美术班", "欢迎4到12岁小朋友"], (960, 240), "#f39c12", "#ffffff", "PNG"),
    ("feiyue", "/img/banner-sport.png"): (["暑期篮球游泳编程营", "快乐运动健康成长"], (960, 240), "#27ae60", "#ffffff", "PNG"),
    ("xingguang", "/img/lazy-olympiad.png"): (["希望杯数学竞赛冲刺班", "保证拿奖"], (800, 200), "#d35400", "#ffffff", "PNG"),
    ("xingguang", "/img/popup-ad.png"): (["预存两年学费立减5000元"], (480, 160), "#c0392b", "#ffffff", "PNG"),
    # One ad campaign on two institutions' sites, re-encoded and resized (jianfu campaigns).
    ("qiming", "/img/summer-olympiad.png"): (["暑期奥数集训营火热报名", "小学一至六年级全覆盖"], (960, 240), "#1a5276", "#ffffff", "PNG"),
    ("xuebatong", "/img/summer-olympiad.jpg"): (["暑期奥数集训营火热报名", "小学一至六年级全覆盖"], (900, 225), "#1a5276", "#ffffff", "JPEG"),
}
# Ads carrying a QR code: (lines, size, QR target). A target starting with "/" is a page of the
# site itself (the crawler must follow it); anything else lies outside the scan (recorded only).
QR_ADS: dict[tuple[str, str], tuple[list[str], tuple[int, int], str]] = {
    ("xuebatong", "/img/scan-qr.png"): (["希望杯冲刺班扫码试听", "名额有限先到先得"], (720, 240), "/promo/qr-landing.html"),
    ("qiming", "/img/wechat-qr.png"): (["扫码添加课程顾问", "了解更多课程"], (720, 240), "https://weixin.qq.com/r/qiming-demo"),
}
CONTENT_TYPES = {".html": "text/html", ".png": "image/png", ".webp": "image/webp", ".gif": "image/gif",
                 ".txt": "text/plain", ".css": "text/css", ".js": "application/javascript",
                 ".jpg": "image/jpeg", ".svg": "image/svg+xml", ".json": "application/json"}


GENERATED_PAGES = 500
GENERATED_TEXT = [
    "本周六上午少儿美术班开课，欢迎家长带孩子来体验。",
    "幼小衔接拼音识字班火热招生，名额有限。",
    "篮球训练营暑期开营，专业教练带队。",
    "小学数学同步提高班，周六上午九点上课。",
    "本中心严格遵守双减政策，不开展学科类培训。",
    "编程夏令营带你做出第一个小游戏。",
]
GENERATED_ADS = [["暑期篮球训练营", "欢迎报名"], ["拍照搜题秒出答案", "免费下载"], ["少儿美术创意班", "周末开课"],
                 ["编程思维启蒙课", "免费试听"], ["游泳暑期速成班", "小班教学"]]
GENERATED_COLOURS = ["#34495e", "#8e44ad", "#16a085", "#c0392b", "#2c3e50", "#d35400", "#27ae60"]


@lru_cache(maxsize=256)
def generated_ad(k: int) -> bytes:
    """Ad number ``k`` of the generated site: the k-th issue of one of a few campaigns."""
    first, second = GENERATED_ADS[k % len(GENERATED_ADS)]
    return render_banner([f"{first}第{k + 1}期", second], (800, 200),
                         GENERATED_COLOURS[k % len(GENERATED_COLOURS)], "#ffffff")


def generated_page(page: int, ads: int) -> bytes:
    """Page ``page`` of the generated site: two paragraphs, five links, an ad on every fifth page."""
    n = GENERATED_PAGES
    links = "".join(f'<a href="/p/{(page * 7 + k * 13 + 1) % n}.html">第{k}篇</a> ' for k in range(5))
    para = GENERATED_TEXT[page % len(GENERATED_TEXT)]
    img = f'<img src="/img/ad-{(page // 5) % ads}.png">' if page % 5 == 0 else ""
    html = (f"<html><head><meta charset='utf-8'><title>第{page}页</title></head><body><h1>机构动态 {page}</h1>"
            f"<p>{para}</p><p>{para[::-1]}</p>{img}<nav>{links}</nav></body></html>")
    return html.encode("utf-8")


@lru_cache(maxsize=16)
def qr_ad_bytes(site: str, path: str, base: str) -> bytes:
    from demo_site.adgen import render

    lines, size, target = QR_ADS[(site, path)]
    url = base + target if target.startswith("/") else target
    return render(lines, size=size, font_size=40, qr=url, colors=[(20, 20, 120)]).data


@lru_cache(maxsize=64)
def banner_bytes(site: str, path: str) -> bytes:
    lines, size, bg, fg, fmt = BANNERS[(site, path)]
    return render_banner(lines, size, bg, fg, fmt)


def validators(body: bytes, mtime: float | None) -> dict[str, str]:
    """ETag (hash of the bytes) and, for files, Last-Modified."""
    out = {"ETag": '"' + hashlib.sha1(body).hexdigest()[:20] + '"'}
    if mtime is not None:
        out["Last-Modified"] = formatdate(int(mtime), usegmt=True)
    return out


def not_modified(headers: Message, validators: dict[str, str], mtime: float | None) -> bool:
    """RFC 9110 §13.1: If-None-Match wins over If-Modified-Since."""
    inm = headers.get("If-None-Match")
    if inm is not None:
        tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
        return "*" in tags or validators["ETag"] in tags
    ims = headers.get("If-Modified-Since")
    if ims and mtime is not None:
        try:
            return int(mtime) <= parsedate_to_datetime(ims).timestamp()
        except (TypeError, ValueError):
            return False
    return False


# More hostile routes (issue 13): loops, a redirect out of the web, deep nesting, one very long line.
HOSTILE_MORE = ["/redirect-loop/a", "/refresh-loop/a", "/redirect-file", "/redirect-endless/0", "/redirect-nowhere", "/redirect-to-ok",
                "/deep.html", "/long-line.html"]
DEEP_NESTING = 3000
DEEP_TEXT = "深层嵌套之后：周六上午幼小衔接拼音班火热招生"
LONG_LINE_CHARS = 200_000
LONG_LINE_TEXT = "保证提分，拍照搜题秒出答案"


class DemoHandler(BaseHTTPRequestHandler):
    site = ""
    elsewhere = ""  # hostile site: another demo site's base URL (set by DemoSites) /redirect-out sends to
    generated_ads = 10  # distinct ad images on the generated site (one on every fifth page)
    server_version = "DemoSite/1.0"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def send_body(self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None,
                  mtime: float | None = None) -> None:
        if status == 200:  # validators on every 200, and conditional GETs honoured (incremental re-scans)
            extra = {**(extra or {}), **validators(body, mtime)}
            if not_modified(self.headers, extra, mtime):
                self.send_response(304)
                for k in ("ETag", "Last-Modified"):
                    if k in extra:
                        self.send_header(k, extra[k])
                self.end_headers()
                return
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        if path == "/":
            path = "/index.html"
        if self.site == "hostile":
            return self.hostile(path)
        if self.site == "hostile-robots":
            return self.hostile_robots(path)
        if self.site == "generated":
            return self.generated(path)
        if (self.site, path) in REDIRECTS:
            code, target = REDIRECTS[(self.site, path)]
            return self.send_body(code, b"", "text/html", {"Location": target})
        if (self.site, path) in BANNERS:
            return self.send_body(200, banner_bytes(self.site, path), CONTENT_TYPES[Path(path).suffix])
        if (self.site, path) in QR_ADS:
            base = f"http://127.0.0.1:{self.server.server_address[1]}"
            return self.send_body(200, qr_ad_bytes(self.site, path, base), "image/png")
        if path == "/img/placeholder.gif":
            return self.send_body(200, tiny_gif(), "image/gif")
        file = (SITES_DIR / self.site / path.lstrip("/")).resolve()
        if not file.is_relative_to(SITES_DIR / self.site) or not file.is_file():
            return self.send_body(404, "<html><body><h1>404 页面不存在</h1></body></html>".encode(), "text/html; charset=utf-8")
        body = file.read_bytes()
        ctype = CONTENT_TYPES.get(file.suffix, "application/octet-stream")
        if (self.site, path) in GBK_PAGES:
            body = body.decode("utf-8").encode("gbk")
        elif ctype.startswith("text/"):
            ctype += "; charset=utf-8"
        self.send_body(200, body, ctype, mtime=file.stat().st_mtime)

    # -- a generated site for benchmarks: GENERATED_PAGES pages, five links each --------------
    page_delay = 0.0  # seconds each generated page waits (tests that must catch a scan mid-way)

    def generated(self, path: str) -> None:
        n = GENERATED_PAGES
        if self.page_delay and path != "/robots.txt":
            time.sleep(self.page_delay)
        if path == "/robots.txt":
            return self.send_body(200, b"User-agent: *\nAllow: /\n", "text/plain")
        if path.startswith("/img/ad-") and path.endswith(".png") and path[8:-4].isdigit():
            return self.send_body(200, generated_ad(int(path[8:-4]) % self.generated_ads), "image/png")
        page = 0 if path == "/index.html" else int(path[3:-5]) if path.startswith("/p/") and path[3:-5].isdigit() else -1
        if not 0 <= page < n:
            return self.send_body(404, b"<html><body>404</body></html>", "text/html")
        return self.send_body(200, generated_page(page, self.generated_ads), "text/html; charset=utf-8")

    # -- hostile routes ------------------------------------------------------------------------
    def hostile(self, path: str) -> None:
        if path.startswith("/render/"):
            return self.hostile_render(path)
        if path == "/index.html":
            links = ["/reset", "/binary", "/bad-bytes.html", "/trap/0", "/huge.html", "/bomb.html",
                     "/slow.html", "/ok.html", "/404.html", "/redirect-out", *HOSTILE_MORE]
            html = "<html><body><h1>测试站</h1>" + "".join(f'<a href="{u}">{u}</a> ' for u in links)
            html += '<img src="/img/corrupt.png"><img src="/img/bomb.png"><img src="/img/truncated.png">'
            html += '<img src="/img/missing.png"><img src="/img/server-error.png">'  # 404, 500
            # the same server under names nobody seeded: the private-address guard must refuse them
            port = self.headers.get("Host", "").rpartition(":")[2] or str(self.server.server_address[1])
            html += "".join(f'<img src="http://{host}:{port}/ok.html">' for host in ("127.0.0.2", "localhost"))
            html += "</body></html>"
            return self.send_body(200, html.encode(), "text/html; charset=utf-8")
        if path == "/reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.connection.close()
            self.close_connection = True
            return None
        if path == "/redirect-out" and self.elsewhere:  # a page that leaves for another site
            return self.send_body(302, b"", "text/html", {"Location": self.elsewhere})
        if path in ("/redirect-loop/a", "/redirect-loop/b"):  # a → b → a …
            return self.send_body(302, b"", "text/html", {"Location": "/redirect-loop/" + "ba"[path[-1] == "b"]})
        if path in ("/refresh-loop/a", "/refresh-loop/b"):  # the same with <meta http-equiv=refresh>
            other = "/refresh-loop/" + "ba"[path[-1] == "b"]
            html = f'<html><head><meta http-equiv="refresh" content="0; url={other}"></head><body>跳转中</body></html>'
            return self.send_body(200, html.encode(), "text/html; charset=utf-8")
        if path == "/redirect-file":  # a redirect out of the web: must be refused and said so
            return self.send_body(302, b"", "text/html", {"Location": "file:///etc/passwd"})
        if path.startswith("/redirect-endless/"):  # a new address on every hop: more than the limit
            n = int(path.rsplit("/", 1)[1]) if path.rsplit("/", 1)[1].isdigit() else 0
            return self.send_body(302, b"", "text/html", {"Location": f"/redirect-endless/{n + 1}"})
        if path == "/redirect-to-ok":  # to a page the crawl also reaches by a link
            return self.send_body(301, b"", "text/html", {"Location": "/ok.html"})
        if path == "/redirect-nowhere":  # a 3xx without a Location
            return self.send_body(302, b"<html><body>moved</body></html>", "text/html")
        if path == "/deep.html":  # text after more nesting than an HTML parser's depth limit
            html = ("<html><body>" + "<div>" * DEEP_NESTING + "<p>深处的文字</p>" + "</div>" * DEEP_NESTING
                    + f"<p>{DEEP_TEXT}</p></body></html>")
            return self.send_body(200, html.encode(), "text/html; charset=utf-8")
        if path == "/long-line.html":  # one line of text longer than the detector's chunk
            text = "这是一段普通的介绍文字，没有换行。" * (LONG_LINE_CHARS // 17) + LONG_LINE_TEXT
            return self.send_body(200, f"<html><body><p>{text}</p></body></html>".encode(), "text/html; charset=utf-8")
        if path == "/binary":
            return self.send_body(200, bytes(range(256)) * 40, "application/octet-stream")
        if path == "/bad-bytes.html":
            body = b"<html><body><p>\xff\xfe\xfd broken \x80\x81 \xc3\x28 \xa0\xa1 " + "拍照搜题".encode() + b"</p></body></html>"
            return self.send_body(200, body, "text/html")
        if path.startswith("/trap/"):
            n = int(path.rsplit("/", 1)[-1] or 0) if path.rsplit("/", 1)[-1].isdigit() else 0
            html = f'<html><body><p>第{n}页</p><a href="/trap/{n + 1}">下一页</a> <a href="/trap/{n + 2}">跳页</a></body></html>'
            return self.send_body(200, html.encode(), "text/html; charset=utf-8")
        if path == "/huge.html":
            return self.send_body(200, b"<html><body>" + b"x" * (30 * 1024 * 1024) + b"</body></html>", "text/html")
        if path == "/bomb.html":
            return self.send_body(200, gzip_bomb(), "text/html", {"Content-Encoding": "gzip"})
        if path == "/slow.html":
            time.sleep(float(self.headers.get("X-Slow", "6")))
            return self.send_body(200, b"<html><body>slow</body></html>", "text/html")
        if path == "/ok.html":
            return self.send_body(200, "<html><body><p>幼小衔接拼音班火热招生</p></body></html>".encode(), "text/html; charset=utf-8")
        if path == "/img/corrupt.png":
            return self.send_body(200, b"\x89PNG\r\n\x1a\n" + b"garbage" * 100, "image/png")
        if path == "/img/truncated.png":
            return self.send_body(200, render_banner(["幼小衔接"])[:600], "image/png")
        if path == "/img/bomb.png":
            return self.send_body(200, _png_header_bomb(), "image/png")
        if path == "/img/server-error.png":
            return self.send_body(500, b"<html><body>500</body></html>", "text/html")
        return self.send_body(404, b"<html><body>404</body></html>", "text/html")


    # -- a site whose robots.txt answers ``robots_status`` (503 until a test says otherwise) -------
    robots_status = 503

    def hostile_robots(self, path: str) -> None:
        if path == "/robots.txt":
            if self.robots_status == 200:
                return self.send_body(200, b"User-agent: *\nDisallow: /private/\n", "text/plain")
            body = f"<html><body><h1>{self.robots_status} 服务器错误</h1></body></html>".encode()
            return self.send_body(self.robots_status, body, "text/html; charset=utf-8")
        if path in ("/index.html", "/page.html", "/private/secret.html"):
            html = ("<html><body><p>周六上午幼小衔接拼音班</p><a href='/page.html'>下一页</a>"
                    "<a href='/private/secret.html'>内部</a></body></html>")
            return self.send_body(200, html.encode(), "text/html; charset=utf-8")
        return self.send_body(404, b"<html><body>404</body></html>", "text/html")

    # -- hostile pages for the browser (linked from /render/index.html only) -----------------------
    def hostile_render(self, path: str) -> None:
        def page(body: str, title: str = "测试页") -> None:
            html = f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head><body>{body}</body></html>"
            self.send_body(200, html.encode(), "text/html; charset=utf-8")

        if path in ("/render/", "/render/index.html"):
            links = ["never-idle.html", "endless.html", "js-error.html", "alert.html", "download.zip",
                     "navigate-away.html", "private.html", "stall.html"]
            return page("<h1>浏览器测试站</h1>" + "".join(f'<a href="/render/{u}">{u}</a> ' for u in links))
        if path == "/render/ping":
            return self.send_body(200, b"ok", "text/plain")
        if path == "/render/never-idle.html":  # polls forever: the network never goes quiet
            return page("<p>这个页面一直在发请求。</p><script>let n = 0; setInterval(() => "
                        "fetch('/render/ping?' + (n++)), 120);</script>")
        if path == "/render/endless.html":  # endless scroll: every scroll adds more
            return page("<p>无限滚动的页面。</p><div id='feed'></div><script>const f = document.getElementById('feed');"
                        "let n = 0; function more() { for (let i = 0; i < 20; i++) { const p = document.createElement('p');"
                        "p.style.height = '60px'; p.textContent = '动态 ' + (n++); f.appendChild(p); } } more();"
                        "window.addEventListener('scroll', () => { if (window.scrollY + window.innerHeight > "
                        "document.body.scrollHeight - 400) more(); });</script>")
        if path == "/render/js-error.html":
            return page("<p>页面脚本出错，但内容仍在：周日下午小学奥数班。</p><script>null.boom();</script>")
        if path == "/render/alert.html":
            return page("<p>弹窗页面。</p><script>alert('限时报名，仅剩3个名额！');</script>")
        if path == "/render/download.zip":
            return self.send_body(200, b"PK\x05\x06" + b"\0" * 18, "application/zip",
                                  {"Content-Disposition": 'attachment; filename="brochure.zip"'})
        if path == "/render/navigate-away.html":
            return page("<p>马上跳转……</p><script>setTimeout(() => { location.href = '/render/landed.html'; }, 100);"
                        "</script>")
        if path == "/render/landed.html":
            return page("<p>跳转后的页面：暑期小学语数外全科集训营。</p>")
        if path == "/render/private.html":  # points the browser at an address nobody seeded
            port = self.server.server_address[1]
            return page(f"<p>内网图片。</p><img src='http://127.0.0.2:{port}/render/ping' width='10' height='10'>")
        if path == "/render/stall.html":  # headers and half a page, then nothing
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write("<html><body><p>加载到一半".encode())
            self.wfile.flush()
            time.sleep(float(self.headers.get("X-Stall", "25")))
            return None
        if path == "/render/crash.html":  # the test's hook takes the browser down mid-crawl
            hook = HOOKS.get("crash")
            if hook:
                hook()
            time.sleep(1.0)
            return page("<p>浏览器崩溃测试。</p><a href='/render/after-crash.html'>下一页</a>")
        if path == "/render/after-crash.html":
            return page("<p>崩溃之后的页面：周六上午幼小衔接拼音班。</p>")
        return self.send_body(404, b"<html><body>404</body></html>", "text/html")


@lru_cache(maxsize=1)
def gzip_bomb() -> bytes:
    """200 MB of zeros gzipped to ~200 KB; made once (the first request must not be slow)."""
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6) as gz:
        chunk = b"\0" * (1 << 20)
        for _ in range(200):
            gz.write(chunk)
    return raw.getvalue()


def _png_header_bomb() -> bytes:
    """A tiny PNG whose header claims 60000 x 60000 pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    # connections waiting to be accepted, as a real server allows (nginx: 511). socketserver's 5
    # overflows when a crawler opens 8–16 connections at once while this process is busy: the
    # kernel drops the SYN and the client retries a second later (13–18 one-second stalls per
    # 500-page scan, measured: bench/bench_crawl.py timed the demo server, not the crawler)
    request_queue_size = 128

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients that hang up (timeouts, size limits) are expected here, not errors."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError | BrokenPipeError):
            super().handle_error(request, client_address)


class DemoSites:
    """Start every site on 127.0.0.1 (free ports by default); ``urls`` maps site → base URL."""

    def __init__(self, sites: list[str] | None = None, port_base: int | None = None,
                 generated_ads: int = 10) -> None:
        self.names = sites or [*INSTITUTIONS, "hostile", "generated", *RENDER_SITES, "hostile-robots"]
        self.generated_ads = generated_ads
        self.port_base = port_base
        self.servers: list[ThreadingHTTPServer] = []
        self.urls: dict[str, str] = {}
        self.handlers: dict[str, type[DemoHandler]] = {}

    def start(self) -> DemoSites:
        if "hostile" in self.names:
            gzip_bomb()
        for i, name in enumerate(self.names):
            handler = type(f"{name}Handler", (DemoHandler,), {"site": name, "generated_ads": self.generated_ads})
            port = (self.port_base + i) if self.port_base else 0
            srv = QuietServer(("127.0.0.1", port), handler)
            threading.Thread(target=srv.serve_forever, name=f"demo-{name}", daemon=True).start()
            self.servers.append(srv)
            self.handlers[name] = handler
            self.urls[name] = f"http://127.0.0.1:{srv.server_address[1]}/"
        if "hostile" in self.handlers:  # somewhere else to redirect to: another site, also on loopback
            others = [n for n in ("caihong", *self.names) if n in self.urls and n != "hostile"]
            self.handlers["hostile"].elsewhere = self.urls[others[0]] if others else ""
        return self

    def stop(self) -> None:
        for srv in self.servers:
            srv.shutdown()
            srv.server_close()
        self.servers.clear()

    def __enter__(self) -> DemoSites:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="serve the jianfu demo sites on 127.0.0.1")
    parser.add_argument("--port-base", type=int, default=8801)
    parser.add_argument("--urls-file", help="write the site → URL map here as JSON")
    args = parser.parse_args()
    sites = DemoSites(port_base=args.port_base).start()
    if args.urls_file:
        Path(args.urls_file).write_text(json.dumps(sites.urls, indent=2))
    for name, url in sites.urls.items():
        print(f"{INSTITUTIONS.get(name, name):<12} {url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        sites.stop()


if __name__ == "__main__":
    main()
