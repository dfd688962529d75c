"""Crawl throughput: jianfu's scan vs a bare Scrapy spider over the same generated site, same run.

Both run as subprocesses (Twisted's reactor cannot restart) against the generated 500-page site
of ``demo_site.server`` on 127.0.0.1, with the same concurrency and robots.txt obeyed. jianfu's
first scan includes capture (WARC), detection, storage and OCR of the site's ad images; its second
scan of the unchanged site reuses the OCR cache.

The machine is shared, so each round runs the bare spider, a first scan (new store) and its
re-scan in turn, ``ROUNDS`` rounds; each ratio is taken within one round and the table gives the
median and range of the rounds. CPU seconds are the operating system's accounting of each whole
process tree; for jianfu also split into the scan's own process (the crawl) and its worker process
(detection and OCR, ``crawler.workers``): on a free second core the worker runs beside the crawl,
on a busy machine wall time follows the total.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import figure
from demo_site.server import GENERATED_PAGES, DemoSites

ROUNDS = int(os.environ.get("JIANFU_BENCH_ROUNDS", "3"))

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

# `python -m jianfu` that writes, as it exits, the CPU seconds of its own process and of its
# children (the worker) to $CRAWL_BENCH_CPU
JIANFU = '''
import atexit, os, resource, runpy, sys
def cpu(who):
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime
atexit.register(lambda: open(os.environ["CRAWL_BENCH_CPU"], "w").write(
    f"{cpu(resource.RUSAGE_SELF)} {cpu(resource.RUSAGE_CHILDREN)}"))
sys.argv[0] = "jianfu"
runpy.run_module("jianfu", run_name="__main__")
'''


@dataclass
class Run:
    wall: float
    cpu: float            # the whole process tree
    own: float = 0.0      # jianfu: the scan's own process
    worker: float = 0.0   # jianfu: its worker process


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[Run, str]:
    c0, t0 = children_cpu(), time.perf_counter()
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env).stdout
    return Run(time.perf_counter() - t0, children_cpu() - c0), out


def scan(cmd: list[str], cpu_file: Path) -> tuple[Run, dict]:
    run, out = timed(cmd, dict(os.environ, CRAWL_BENCH_CPU=str(cpu_file)))
    run.own, run.worker = (float(x) for x in cpu_file.read_text().split())
    return run, json.loads(out)


def main() -> None:
    rounds: list[tuple[Run, Run, Run]] = []
    pages = []
    with DemoSites(["generated"]) as sites, tempfile.TemporaryDirectory() as tmp:
        url = sites.urls["generated"]
        for n in range(ROUNDS):
            jianfu = [sys.executable, "-c", JIANFU, "scan", url, "--store", str(Path(tmp) / f"s{n}"),
                      "--depth", "50", "--max-pages", str(GENERATED_PAGES), "--quiet", "--json"]
            bare, _ = timed([sys.executable, "-c", BARE_SPIDER, url])
            first, summary = scan(jianfu, Path(tmp) / "cpu")
            second, _ = scan(jianfu, Path(tmp) / "cpu")
            rounds.append((bare, first, second))
            pages.append(summary["pages"])

    def median(values: list[float]) -> float:
        return statistics.median(values)

    bare_s = median([b.wall for b, _, _ in rounds])
    first_ratios = [b.wall / f.wall for b, f, _ in rounds]
    rescan_ratios = [b.wall / s.wall for b, _, s in rounds]
    figure("crawl.rounds", len(rounds))
    figure("crawl.bare_s", bare_s)
    figure("crawl.first_s", median([f.wall for _, f, _ in rounds]))
    figure("crawl.rescan_s", median([s.wall for _, _, s in rounds]))
    figure("crawl.http_vs_bare", median(first_ratios))
    figure("crawl.http_vs_bare_min", min(first_ratios))
    figure("crawl.http_vs_bare_max", max(first_ratios))
    figure("crawl.rescan_vs_bare", median(rescan_ratios))
    figure("crawl.bare_cpu_s", median([b.cpu for b, _, _ in rounds]))
    figure("crawl.first_cpu_s", median([f.cpu for _, f, _ in rounds]))
    figure("crawl.first_scan_cpu_s", median([f.own for _, f, _ in rounds]))
    figure("crawl.first_worker_cpu_s", median([f.worker for _, f, _ in rounds]))
    figure("crawl.rescan_cpu_s", median([s.cpu for _, _, s in rounds]))
    figure("crawl.pages", min(pages))

    def span(values: list[float]) -> str:
        return f"{median(values):.2f} ({min(values):.2f}–{max(values):.2f})"

    n = GENERATED_PAGES
    print(f"{len(rounds)} rounds (bare, first scan, re-scan in turn); median (range) of the rounds; "
          f"load average {os.getloadavg()[0]:.1f} at the end\n")
    print("| crawler (generated site, 500 pages + 10 ad images) | wall seconds | pages/s | vs bare Scrapy "
          "| CPU seconds (whole process tree) | of which the scan's process / its worker |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| bare Scrapy CrawlSpider | {span([b.wall for b, _, _ in rounds])} | {n / bare_s:.1f} | 1.00 "
          f"| {span([b.cpu for b, _, _ in rounds])} | |")
    for label, runs, ratios in (("jianfu scan, first (WARC + detect + store + OCR)", [f for _, f, _ in rounds],
                                 first_ratios),
                                ("jianfu scan, re-scan (OCR cached)", [s for _, _, s in rounds], rescan_ratios)):
        wall = median([r.wall for r in runs])
        print(f"| {label} | {span([r.wall for r in runs])} | {n / wall:.1f} | {span(ratios)} "
              f"| {span([r.cpu for r in runs])} | {median([r.own for r in runs]):.2f} / "
              f"{median([r.worker for r in runs]):.2f} |")
    print(f"\n(jianfu stored {min(pages)}–{max(pages)} pages per scan; process start-up is included in every figure)")


if __name__ == "__main__":
    main()
