"""Crawl throughput: jianfu's scan vs a bare Scrapy spider over the same generated site, same run.

Both run as subprocesses (Twisted's reactor cannot restart) against the generated 500-page site
of ``demo_site.server`` on 127.0.0.1, with the same concurrency and robots.txt obeyed. jianfu's
first scan includes capture (WARC), detection, storage and OCR of the site's ad images; its second
scan of the unchanged site reuses the OCR cache.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import figure
from demo_site.server import GENERATED_PAGES, DemoSites

BARE_SPIDER = '''
import sys, scrapy
from scrapy.crawler import CrawlerProcess
from scrapy.linkextractors import LinkExtractor
from scrapy.spiders import CrawlSpider, Rule
start = sys.argv[1]
class Bare(CrawlSpider):
    name = "bare"
    start_urls = [start]
    allowed_domains = ["127.0.0.1"]
    rules = [Rule(LinkExtractor(), callback="parse_item", follow=True)]
    def parse_start_url(self, response):
        return self.parse_item(response)
    def parse_item(self, response):
        for src in response.css("img::attr(src)").getall():
            yield response.follow(src, callback=self.image)
        yield {"url": response.url, "text": " ".join(response.css("body ::text").getall())}
    def image(self, response):
        yield {"image": response.url, "bytes": len(response.body)}
p = CrawlerProcess({"LOG_LEVEL": "ERROR", "ROBOTSTXT_OBEY": True, "CONCURRENT_REQUESTS": 16,
                    "CONCURRENT_REQUESTS_PER_DOMAIN": 8, "DEPTH_LIMIT": 0, "TELNETCONSOLE_ENABLED": False})
p.crawl(Bare)
p.start()
'''


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    with DemoSites(["generated"]) as sites, tempfile.TemporaryDirectory() as tmp:
        url = sites.urls["generated"]
        jianfu = [sys.executable, "-m", "jianfu", "scan", url, "--store", str(Path(tmp) / "s"),
                  "--depth", "50", "--max-pages", str(GENERATED_PAGES), "--quiet", "--json"]
        bare = timed([sys.executable, "-c", BARE_SPIDER, url])
        first = timed(jianfu)
        second = timed(jianfu)
        out = subprocess.run(jianfu, check=True, capture_output=True, text=True).stdout
        pages = json.loads(out)["pages"]
    n = GENERATED_PAGES
    figure("crawl.bare_s", bare)
    figure("crawl.first_s", first)
    figure("crawl.rescan_s", second)
    figure("crawl.http_vs_bare", bare / first)
    figure("crawl.rescan_vs_bare", bare / second)
    figure("crawl.pages", pages)
    print("| crawler (generated site, 500 pages + 10 ad images) | seconds | pages/s | vs bare Scrapy |")
    print("|---|---:|---:|---:|")
    print(f"| bare Scrapy CrawlSpider | {bare:.2f} | {n / bare:.1f} | 1.00 |")
    print(f"| jianfu scan, first (WARC + detect + store + OCR) | {first:.2f} | {n / first:.1f} | {bare / first:.2f} |")
    print(f"| jianfu scan, re-scan (OCR cached) | {second:.2f} | {n / second:.1f} | {bare / second:.2f} |")
    print(f"\n(jianfu stored {pages} pages per scan; process start-up is included in every figure)")


if __name__ == "__main__":
    main()
