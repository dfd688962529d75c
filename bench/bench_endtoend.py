"""End to end on real texts: a site built from the real corpora, served by Python's own
``http.server``, scanned by ``jianfu scan`` as an investigator would run it; a page counts as
flagged when any finding names it.

Each corpus text becomes one page, shown in one of six ways (in turn, so every part of every
corpus has all six): plain UTF-8 HTML with a line break inside the text, a GBK page, a banner
image (the text wrapped over several lines: OCR and the joining of a block's lines), a CSS
background image, a lazy image (``data-src``), and text built by a script (the scan re-fetches
such pages in Chromium). The scan uses the defaults (HTTP, automatic rendering where a page
builds its text by script, the default OCR engine).

The parts are the corpora's tuning and sealed parts (``bench.corpus``): only aggregate figures
are printed, never a text. This is the pipeline's honest estimate, beside the detectors' own
(``bench_detectors``: the same texts given to the detector directly). Only rule findings count:
every corpus text is also a case of the shipped precedent library, so here each page would be
"suspected" of resembling itself; the suspected tier is measured in ``bench_precedents``, which
leaves a text's own case out.
"""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from bench import corpus, figure
from demo_site.static import StaticSites

ROOT = Path(__file__).resolve().parent.parent
WAYS = ("html", "gbk", "banner", "css", "lazy", "script")
WAYS_ZH = {"html": "HTML 文本", "gbk": "GBK 页面", "banner": "横幅图片", "css": "CSS 背景图",
           "lazy": "懒加载图片", "script": "脚本生成文本"}
BANNER_CHARS = 14  # characters per banner line: longer texts wrap over several lines, as ads do
PLACEHOLDER_GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
                   b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")


def _page(title: str, body: str, charset: str = "utf-8") -> str:
    return (f'<!doctype html><html><head><meta charset="{charset}"><title>{html.escape(title)}</title></head>'
            f"<body><h1>{html.escape(title)}</h1>{body}</body></html>")


_BREAKS = set("，,。.！!？?；;：: 、")


def _with_break(text: str) -> str:
    """The text as one HTML block with a ``<br>`` where an editor would break it: after the
    punctuation nearest its middle (a block's lines are joined before detection)."""
    if len(text) < 20:
        return f"<p>{html.escape(text)}</p>"
    mid = len(text) // 2
    cuts = [i + 1 for i, c in enumerate(text[:-1]) if c in _BREAKS and abs(i + 1 - mid) <= len(text) // 3]
    cut = min(cuts, key=lambda i: abs(i - mid)) if cuts else mid
    return f"<p>{html.escape(text[:cut])}<br>\n{html.escape(text[cut:])}</p>"


def _banner(text: str, seed: int) -> tuple[bytes, int, int]:
    from demo_site.adgen import render

    lines = [text[i:i + BANNER_CHARS] for i in range(0, len(text), BANNER_CHARS)] or [" "]
    ad = render(lines, font_size=40, style="clean", seed=seed, colors=[(20, 20, 20), (160, 20, 20)])
    return ad.data, ad.width, ad.height


def build_site(root: Path, parts: list[tuple[str, str, list[str], list[str]]]) -> dict[str, tuple[str, str, bool]]:
    """Write the site under ``root``; return page path → (part key, way, is a violation)."""
    pages: dict[str, tuple[str, str, bool]] = {}
    (root / "img").mkdir(parents=True, exist_ok=True)
    (root / "img" / "blank.gif").write_bytes(PLACEHOLDER_GIF)
    (root / "robots.txt").write_text("User-agent: *\nAllow: /\n", encoding="ascii")
    index_links = []
    n = 0
    for key, _, violations, compliant in parts:
        links = []
        for kind, texts in (("v", violations), ("c", compliant)):
            for i, text in enumerate(texts):
                way = WAYS[(i + (kind == "c")) % len(WAYS)]
                name = f"{key}-{kind}{i:03d}.html"
                title = "课程介绍"
                n += 1
                if way == "html":
                    doc = _page(title, _with_break(text)).encode("utf-8")
                elif way == "gbk":
                    doc = _page(title, _with_break(text), "gbk").encode("gbk", errors="xmlcharrefreplace")
                elif way == "script":
                    js = json.dumps(text, ensure_ascii=True)
                    doc = _page(title, f'<div id="ad"></div><script>document.getElementById("ad").textContent = {js};'
                                       "</script>").encode("utf-8")
                else:
                    data, w, h = _banner(text, n)
                    img = f"img/{key}-{kind}{i:03d}.png"
                    (root / img).write_bytes(data)
                    if way == "banner":
                        body = f'<img src="{img}" alt="" width="{w}" height="{h}">'
                    elif way == "css":
                        body = (f'<div class="ad" style="background-image:url(\'{img}\');width:{w}px;height:{h}px">'
                                "</div>")
                    else:
                        body = f'<img class="lazy" src="img/blank.gif" data-src="{img}" alt="" width="{w}" height="{h}">'
                    doc = _page(title, body).encode("utf-8")
                (root / name).write_bytes(doc)
                pages[name] = (key, way, kind == "v")
                links.append(f'<li><a href="{name}">第 {len(links) + 1} 页</a></li>')
        (root / f"{key}.html").write_text(_page(key, "<ul>" + "".join(links) + "</ul>"), encoding="utf-8")
        index_links.append(f'<li><a href="{key}.html">{key}</a></li>')
    (root / "index.html").write_text(_page("课程", "<ul>" + "".join(index_links) + "</ul>"), encoding="utf-8")
    return pages


def scan(url: str, store: Path, n_pages: int) -> tuple[list[dict], float]:
    """``jianfu scan`` of the site at ``url`` with its defaults; (findings, wall seconds)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "jianfu", "scan", url, "--store", str(store), "--depth", "3",
                    "--max-pages", str(n_pages + 50), "--quiet"],
                   cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    out = subprocess.run([sys.executable, "-m", "jianfu", "findings", "--store", str(store), "--format", "jsonl"],
                         cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()], wall


def page_scores(pages: dict[str, tuple[str, str, bool]], findings: list[dict]) -> dict:
    """Per part and per way: [violation pages, flagged, compliant pages, passed] (rule findings)."""
    hit: set[str] = set()
    for f in findings:
        if f.get("tier") == "suspected":
            continue
        for url in [f["url"], *f.get("alternate_urls", [])]:
            hit.add(url.rsplit("/", 1)[-1])
    acc: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for name, (key, way, violation) in pages.items():
        for k in ((key, "all"), ("all", way)):
            a = acc[k]
            if violation:
                a[0] += 1
                a[1] += name in hit
            else:
                a[2] += 1
                a[3] += name not in hit
    return acc


def _share(a: int, b: int) -> str:
    return f"{a / b:.2f}" if b else "–"


def main() -> None:
    if not corpus.available():
        print(f"corpus not found at {corpus.CORPUS_DIR}: nothing to measure")
        return
    parts = []
    for name, vfile, cfile in corpus.SETS:
        vt, vs = corpus.split(corpus.load(vfile))
        ct, cs = corpus.split(corpus.load(cfile))
        for part, v, c in (("tuning", vt, ct), ("sealed", vs, cs)):
            parts.append((f"{name}-{part}", part, [r.text for r in v], [r.text for r in c]))
    pages: dict[str, tuple[str, str, bool]] = {}
    with (StaticSites(["corpus"], server="python", layout=lambda _, dest: pages.update(build_site(dest, parts)))
          as site, tempfile.TemporaryDirectory(prefix="jianfu-e2e-") as tmp):
        findings, wall = scan(site.urls["corpus"] + "index.html", Path(tmp) / "store", len(pages) + len(parts) + 1)
    acc = page_scores(pages, findings)
    print(f"{len(pages)} pages from the real corpora (one text per page, six ways of showing it), served by "
          f"Python's http.server, scanned by `jianfu scan` with its defaults in {wall:.0f} s.")
    print()
    print("| part | violation pages | flagged | compliant pages | passed |")
    print("|---|---:|---:|---:|---:|")
    for key, *_ in parts:
        a = acc[(key, "all")]
        print(f"| {key} | {a[0]} | {_share(a[1], a[0])} | {a[2]} | {_share(a[3], a[2])} |")
        figure(f"endtoend.{key.replace('-', '_')}_flagged", a[1] / a[0] if a[0] else None)
        figure(f"endtoend.{key.replace('-', '_')}_passed", a[3] / a[2] if a[2] else None)
    print()
    print("All parts together, by the way the text was shown:")
    print()
    print("| shown as | violation pages | flagged | compliant pages | passed |")
    print("|---|---:|---:|---:|---:|")
    for way in WAYS:
        a = acc[("all", way)]
        print(f"| {WAYS_ZH[way]} ({way}) | {a[0]} | {_share(a[1], a[0])} | {a[2]} | {_share(a[3], a[2])} |")
        figure(f"endtoend.{way}_flagged", a[1] / a[0] if a[0] else None)
    figure("endtoend.scan_seconds", round(wall, 1))


if __name__ == "__main__":
    main()
