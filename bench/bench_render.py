"""Rendered crawl throughput and memory: ``jianfu scan --render`` vs bare scrapy-playwright, same run.

Both crawl the generated 500-page site of ``demo_site.server`` on 127.0.0.1 through Debian's
Chromium with the same concurrency, as subprocesses. The bare spider renders each page, takes a
full-page PNG screenshot of it (Playwright's ``page.screenshot(full_page=True)``, the evidence
every rendered page needs) and yields its HTML text; jianfu also waits for the network to go quiet,
scrolls, measures text boxes, archives every browser response to the WARC, detects, stores and
OCRs the site's ad images. Target (issue 18): ≥ 0.90× the bare pages/s at ≤ 1.2× its peak memory. Resident memory is the whole process tree (Python, Playwright's driver,
Chromium), sampled twice a second: peak, after the first quarter of the run, and at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

import demo_site.server
from bench import figure
from crawler.render import CHROMIUM_ARGS, chromium_executable
from demo_site.server import DemoSites

CONCURRENCY = 8  # --concurrency; both crawlers then run CONCURRENCY // 2 per site (jianfu's politeness rule)

BARE_SPIDER = '''
import sys, scrapy
from scrapy.crawler import CrawlerProcess
from scrapy_playwright.page import PageMethod
from scrapy.linkextractors import LinkExtractor
from scrapy.spiders import CrawlSpider, Rule
start, exe, args, conc = sys.argv[1], sys.argv[2], sys.argv[3].split(), int(sys.argv[4])
SHOT = [PageMethod("screenshot", full_page=True, type="png")]
def render(request, response):
    request.meta["playwright"] = True
    request.meta["playwright_page_methods"] = SHOT
    return request
class Bare(CrawlSpider):
    name = "bare"
    allowed_domains = ["127.0.0.1"]
    rules = [Rule(LinkExtractor(), callback="parse_item", follow=True, process_request=render)]
    async def start(self):
        yield scrapy.Request(start, meta={"playwright": True, "playwright_page_methods": SHOT})
    def parse_start_url(self, response):
        return self.parse_item(response)
    def parse_item(self, response):
        shot = response.meta["playwright_page_methods"][0].result
        yield {"url": response.url, "text": " ".join(response.css("body ::text").getall()), "png": len(shot)}
handler = "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler"
p = CrawlerProcess({"LOG_LEVEL": "ERROR", "ROBOTSTXT_OBEY": True, "CONCURRENT_REQUESTS": conc,
                    "CONCURRENT_REQUESTS_PER_DOMAIN": max(1, conc // 2), "DEPTH_LIMIT": 0, "TELNETCONSOLE_ENABLED": False,
                    "TWISTED_REACTOR": "twisted.internet.asyncioreactor.AsyncioSelectorReactor",
                    "DOWNLOAD_HANDLERS": {"http": handler, "https": handler},
                    "PLAYWRIGHT_LAUNCH_OPTIONS": {"executable_path": exe, "args": args, "headless": True}})
p.crawl(Bare)
p.start()
'''


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run(cmd: list[str]) -> dict[str, float]:
    """Run ``cmd``; wall time and tree RSS samples (MB)."""
    t0 = time.perf_counter()
    popen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    proc = psutil.Process(popen.pid)
    samples: list[tuple[float, int]] = []
    while popen.poll() is None:
        try:
            samples.append((time.perf_counter() - t0, tree_rss(proc)))
        except psutil.Error:
            pass
        time.sleep(0.5)
    out = popen.stdout.read() if popen.stdout else ""
    seconds = time.perf_counter() - t0
    if popen.returncode:
        raise RuntimeError(f"{cmd[:4]} exited {popen.returncode}")
    live = [(t, r) for t, r in samples if r > 0] or [(0.0, 0)]
    quarter = next((r for t, r in live if t >= seconds / 4), live[-1][1])
    # "end": the last samples while the crawl still ran (before shutdown closes the browser)
    tail = [r for t, r in live if t >= seconds * 0.9] or [live[-1][1]]
    mb = 1024 * 1024
    return {"seconds": seconds, "peak": max(r for _, r in live) / mb, "quarter": quarter / mb,
            "end": max(tail) / mb, "out": out}


def main() -> None:
    exe = chromium_executable()
    if exe is None:
        print("Chromium is missing: no rendered benchmark")
        return
    # JIANFU_BENCH_PAGES: a smaller site while iterating (the published figures use all 500 pages)
    n = demo_site.server.GENERATED_PAGES = int(os.environ.get("JIANFU_BENCH_PAGES", demo_site.server.GENERATED_PAGES))
    with DemoSites(["generated"]) as sites, tempfile.TemporaryDirectory() as tmp:
        url = sites.urls["generated"]
        bare = run([sys.executable, "-c", BARE_SPIDER, url, exe, " ".join(CHROMIUM_ARGS), str(CONCURRENCY)])
        jianfu = run([sys.executable, "-m", "jianfu", "scan", url, "--store", str(Path(tmp) / "s"), "--render",
                      "--depth", "50", "--max-pages", str(100 * n), "--concurrency", str(CONCURRENCY), "--quiet", "--json"])
        summary = json.loads(jianfu["out"])
        warc_mb = sum(p.stat().st_size for p in (Path(tmp) / "s" / "warc").glob("*.warc.gz")) / 1024 / 1024
    pages = summary["pages"]
    figure("render.bare_screenshot_s", bare["seconds"])
    figure("render.jianfu_s", jianfu["seconds"])
    figure("render.pages", pages)
    figure("render.vs_bare_screenshot", bare["seconds"] / jianfu["seconds"] * pages / n)
    figure("render.bare_screenshot_peak_rss_mb", bare["peak"])
    figure("render.jianfu_peak_rss_mb", jianfu["peak"])
    figure("render.peak_rss_vs_bare", jianfu["peak"] / bare["peak"])
    print(f"| rendered crawl (generated site, {n} pages, concurrency {CONCURRENCY}) | seconds | pages/s "
          "| vs bare | peak RSS MB | RSS at 1/4 MB | RSS at end MB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(f"| bare scrapy-playwright (render, full-page screenshot, HTML text) | {bare['seconds']:.1f} | {n / bare['seconds']:.1f} | 1.00 "
          f"| {bare['peak']:.0f} | {bare['quarter']:.0f} | {bare['end']:.0f} |")
    print(f"| jianfu scan --render (idle wait, scroll, text boxes, screenshot, WARC, detect, store, OCR) "
          f"| {jianfu['seconds']:.1f} | {pages / jianfu['seconds']:.1f} | {bare['seconds'] / jianfu['seconds'] * pages / n:.2f} "
          f"| {jianfu['peak']:.0f} | {jianfu['quarter']:.0f} | {jianfu['end']:.0f} |")
    print(f"\n(jianfu stored {pages} rendered pages, {summary['errors']} errors, WARC {warc_mb:.0f} MB; "
          "RSS is the whole process tree incl. Chromium; process start-up is included in every figure)")


if __name__ == "__main__":
    main()
