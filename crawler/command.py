"""``jianfu scan URL... --store DIR``: crawl, detect and store; print a summary."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:  # Scrapy is imported only when a scan actually runs: `jianfu --help` stays quick
    from crawler.context import Seed
    from crawler.workers import WorkerProcess


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scan", help="crawl sites, detect violations, store pages and findings",
                       description="Seeds are URLs, or NAME=URL to name the institution behind the site.")
    p.add_argument("seeds", nargs="+", metavar="URL", help="http(s) start URL, or 机构名=URL")
    p.add_argument("--store", required=True,
                   help="store directory (created if missing), or postgresql://…?files=SHARED_DIR")
    p.add_argument("--depth", type=int, default=3, help="link depth from each seed (default 3)")
    p.add_argument("--max-pages", type=int, default=500, help="page budget for the whole scan (default 500)")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--timeout", type=float, default=20.0, help="seconds per request (default 20)")
    p.add_argument("--district", help="district recorded on every finding of this scan")
    p.add_argument("--target", help="scan-plan target name (set by the scheduler)")
    p.add_argument("--ocr-engine", default="rapidocr", choices=["rapidocr", "paddleocr"])
    p.add_argument("--ocr-threads", type=int, help="CPU threads per OCR call (default: the engine's, 1)")
    p.add_argument("--render", action="store_true",
                   help="render every page in Chromium: wait for scripts, scroll, full-page screenshot")
    p.add_argument("--no-auto-render", dest="render_auto", action="store_false",
                   help="do not re-fetch script-built pages with the browser")
    p.add_argument("--wait-for", metavar="SELECTOR", help="CSS selector rendered pages must show before capture")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--verbose", action="store_true", help="Scrapy's INFO log on stderr")
    p.set_defaults(func=run, parser=p)


def parse_seed(raw: str, district: str | None) -> Seed:
    from crawler.context import Seed

    name, sep, url = raw.partition("=")
    if not sep or "://" in name:
        name, url = "", raw
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {raw!r}")
    if not parts.path:
        url += "/"
    return Seed(url=url, institution=name.strip() or parts.netloc, district=district)


def run(args: argparse.Namespace) -> int:
    # the scan's worker process first (crawler.workers): it imports the detectors on the other core
    # while this process imports Scrapy
    from crawler.workers import WorkerProcess

    worker = WorkerProcess().start()
    try:
        return scan(args, worker)
    finally:
        worker.close()  # run_scan closed it already, unless the command line was refused


def scan(args: argparse.Namespace, worker: WorkerProcess) -> int:
    from crawler.runner import ScanOptions, run_scan
    from jianfu.cli import CommandError
    from store import Store, StoreError

    try:
        seeds = [parse_seed(s, args.district) for s in args.seeds]
    except ValueError as e:
        args.parser.error(str(e))
    if args.depth < 0 or args.max_pages < 1:
        args.parser.error("--depth must be ≥ 0 and --max-pages ≥ 1")
    if args.ocr_threads is not None and args.ocr_threads < 1:
        args.parser.error("--ocr-threads must be ≥ 1")
    if args.concurrency < 1 or not args.timeout > 0:  # `not >` also refuses nan
        args.parser.error("--concurrency must be ≥ 1 and --timeout > 0 seconds")
    try:
        Store(args.store).close()
    except StoreError as e:
        raise CommandError(str(e)) from e
    options = ScanOptions(max_depth=args.depth, max_pages=args.max_pages, concurrency=args.concurrency,
                          timeout=args.timeout,
                          ocr={"engine": args.ocr_engine} | ({"threads": args.ocr_threads} if args.ocr_threads else {}),
                          progress_seconds=0 if args.quiet else 2.0,
                          log_level="INFO" if args.verbose else "WARNING", target=args.target,
                          render=args.render, render_auto=args.render_auto, wait_for=args.wait_for)
    summary = run_scan(seeds, args.store, options, worker=worker)
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        print_summary(summary)
    return 0 if summary["status"] in ("finished", "interrupted") else 1


def print_summary(s: dict, out=sys.stdout) -> None:
    print(f"scan {s['scan_id']}: {s['status']}", file=out)
    print(f"  pages {s['pages']} · images {s['images']} (OCR runs {s.get('ocr_runs', 0)}, "
          f"cached {s.get('ocr_cached', 0)}) · errors {s['errors']} · findings {s['findings']} "
          f"({s['new_findings']} new)", file=out)
    for cat, n in s["by_category"].items():
        print(f"    {cat:<22} {n}", file=out)
    for site in s.get("ledger") or []:  # the store has an institution ledger (ledger/scan.py)
        who = f"{site['name']} {site['credit_code']} (linked by {site['linked_by']})" if site["credit_code"] \
            else "not in the ledger"
        print(f"  ledger: {site['site']} → {who}" + (f"; cross-checks: {', '.join(site['checks'])}"
                                                     if site["checks"] else ""), file=out)
    if s["failures"]:
        print("  failures:", file=out)
        for f in s["failures"]:
            print(f"    {f['kind']:<6} {f['url']}  {f['error']}: {f['reason']}", file=out)
