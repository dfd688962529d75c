"""Run one scan in this process: open the store, crawl, detect, record, summarise.

Twisted's reactor cannot restart, so one process runs one scan; the scheduler starts scans as
subprocesses (``jianfu scan``).
"""

from __future__ import annotations

import gc
import inspect
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from scrapy.crawler import CrawlerProcess
from scrapy.settings import Settings

from crawler import settings as default_settings
from crawler.context import CONTEXTS, ScanContext, Seed
from crawler.render import browser_settings, capture_info, chromium_executable
from crawler.spiders.site import SiteSpider
from crawler.warc import WarcWriter, utc_stamp
from crawler.workers import GC_YOUNG_OBJECTS, WorkerError, WorkerProcess, build_detector
from jianfu import __version__
from store import Store

COMMIT_SECONDS = 0.5  # how often a scan commits what it stored (Store.batched_writes)


def _import_http_handler() -> None:
    """Import Scrapy's HTTP download handler now rather than when the crawl builds its downloader.

    Its TLS modules name the module of three deprecated aliases with ``inspect.stack()[1]``, and
    ``inspect.stack()`` reads the source of every frame on the stack and, for each frame without a
    file (the import machinery's), walks every loaded module: ~0.15 s of a scan's start, several
    times that inside the running reactor. Only the caller's frame is used, so during this one
    import ``inspect.stack()`` lists the frames without their source lines."""

    def frames(context: int = 1) -> list[tuple[FrameType]]:
        frame, out = sys._getframe(1), []
        while frame is not None:
            out.append((frame,))
            frame = frame.f_back
        return out

    real, inspect.stack = inspect.stack, frames  # type: ignore[assignment]
    try:
        import scrapy.core.downloader.handlers.http11  # noqa: F401
    finally:
        inspect.stack = real


_import_http_handler()


@dataclass
class ScanOptions:
    max_depth: int = 3
    max_pages: int = 500
    concurrency: int = 16
    timeout: float = 20.0
    ocr: dict[str, Any] = field(default_factory=dict)
    progress_seconds: float = 2.0
    log_level: str = "WARNING"
    target: str | None = None
    render: bool = False              # render every page in Chromium (crawler.render)
    render_auto: bool = True          # render pages that are clearly built by script
    wait_for: str | None = None       # CSS selector a rendered page must show before capture
    scrapy: dict[str, Any] = field(default_factory=dict)  # extra Scrapy settings

    def to_record(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "scrapy"} | {"scrapy": dict(self.scrapy)}


def render_settings(options: ScanOptions, executable: str | None) -> dict[str, Any]:
    """Browser settings when Chromium is there; plain scans keep Scrapy's own HTTP handlers."""
    base = {"JIANFU_RENDER": options.render, "JIANFU_RENDER_AUTO": options.render_auto,
            "JIANFU_RENDER_WAIT_FOR": options.wait_for, "JIANFU_RENDER_AVAILABLE": False}
    if not executable:
        return base
    return base | browser_settings(executable, concurrency=options.concurrency, timeout=options.timeout) | {
        "DOWNLOADER_MIDDLEWARES": {**default_settings.DOWNLOADER_MIDDLEWARES, "crawler.render.RenderMiddleware": 960},
    }


def scrapy_settings(scan_id: str, options: ScanOptions, executable: str | None = None) -> Settings:
    s = Settings()
    s.setmodule(default_settings, priority="project")
    s.update({
        "JIANFU_SCAN_ID": scan_id,
        "JIANFU_MAX_DEPTH": options.max_depth,
        "JIANFU_MAX_PAGES": options.max_pages,
        "JIANFU_PROGRESS_SECONDS": options.progress_seconds,
        "CONCURRENT_REQUESTS": options.concurrency,
        "CONCURRENT_REQUESTS_PER_DOMAIN": max(1, options.concurrency // 2),
        "DOWNLOAD_TIMEOUT": options.timeout,
        "LOG_LEVEL": options.log_level,
        **render_settings(options, executable),
        **options.scrapy,
    }, priority="cmdline")
    return s


class FaultLines(logging.Handler):
    """A fault while crawling (an error logged with its traceback, e.g. a pipeline that raised):
    one line on stderr naming the scan's log, where Scrapy wrote the traceback. The first few
    only; the summary's counts say how the scan went."""

    def __init__(self, log_path: Path, most: int = 5) -> None:
        super().__init__(logging.ERROR)
        self.log_path, self.most, self.count = log_path, most, 0

    def emit(self, record: logging.LogRecord) -> None:
        if not record.exc_info:
            return
        self.count += 1
        if self.count <= self.most:
            first = " ".join(record.getMessage().split())[:160]
            print(f"jianfu scan: 内部错误：{first}…（完整记录见 {self.log_path}）", file=sys.stderr, flush=True)


def cross_check_ledger(store: Store, scan_id: str) -> list[dict[str, Any]] | None:
    """Link the scanned sites to the store's institution ledger and save the cross-check findings
    (ledger/scan.py); a failure there is reported and leaves the scan's own findings as they are.
    None when the store has no ledger (then the ledger code is not even imported)."""
    try:
        if not store.has_ledger():
            return None
        from ledger.scan import check_scan

        return check_scan(store, scan_id)
    except Exception as e:  # noqa: BLE001 - the crawl's results are already stored
        logging.getLogger(__name__).exception("ledger cross-check failed")
        print(f"jianfu: 台账核对失败（{type(e).__name__}: {e}），本次扫描的其他结果不受影响", file=sys.stderr)
        return None


def run_scan(seeds: list[Seed], store_dir: str, options: ScanOptions | None = None,
             worker: WorkerProcess | None = None) -> dict[str, Any]:
    """Crawl ``seeds`` into the store at ``store_dir``; returns the scan summary. ``worker``: the
    scan's worker process when the caller started it early (``WorkerProcess.start``); closed here."""
    options = options or ScanOptions()
    thresholds = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_OBJECTS, *thresholds[1:])
    executable = None
    if options.render or options.render_auto or any(s.render for s in seeds):
        executable = chromium_executable()
        if not executable and (options.render or any(s.render for s in seeds)):
            print("jianfu: Chromium not found (install Debian's chromium or set JIANFU_CHROMIUM): "
                  "scanning over HTTP without rendering", file=sys.stderr, flush=True)
    store = Store(store_dir)
    for abandoned in store.close_abandoned_scans():  # a scan of this store killed earlier
        print(f"jianfu scan: 扫描 {abandoned} 的进程已不在（被终止或崩溃），已记为中断 (interrupted)",
              file=sys.stderr, flush=True)
    scan_id = store.begin_scan([s.url for s in seeds], options.to_record(), target=options.target)
    # the worker process builds the rules, plus the precedent library grown by the findings this
    # store's investigators reviewed, while this process starts the crawl (started by `jianfu scan`
    # before it imported Scrapy, else here: before this process runs any other thread)
    worker = worker or WorkerProcess()
    reviewed = store.reviewed_findings()
    # everything imported so far lives as long as the process: out of the cyclic garbage collector's
    # sight (gc.freeze), a full collection during the crawl no longer walks it, and the forked
    # worker does not copy the memory pages the collector would otherwise write to
    gc.freeze()
    built = worker.submit(build_detector, reviewed)
    # asking Chromium its version waits ~0.1–0.2 s on a process: the crawl starts meanwhile, and the
    # WARC file begins (warcinfo record first) with the first record written
    pool = ThreadPoolExecutor(1)
    asked = pool.submit(capture_info, options.to_record(), executable)
    pool.shutdown(wait=False)  # its one task still runs
    fixed = {"operator": "jianfu", "created": utc_stamp(), "jianfu-version": __version__,
             "seeds": " ".join(s.url for s in seeds)}
    warc = WarcWriter(store.dir / "warc", scan_id, lambda: {**fixed, **asked.result()})
    settings = scrapy_settings(scan_id, options, executable)
    ctx = ScanContext(store=store, scan_id=scan_id, seeds=seeds, worker=worker, warc=warc,
                      settings=options.to_record())
    CONTEXTS[scan_id] = ctx
    status = "failed"
    ledger_sites = None
    if options.log_level != "INFO":  # every failure is in the summary; don't repeat retries on stderr
        for name in ("scrapy.downloadermiddlewares.retry", "scrapy.downloadermiddlewares.robotstxt"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    faults = None
    if options.log_level != "INFO":  # Scrapy's log goes to the store; stderr gets one line per fault
        log_path = store.dir / "logs" / f"scan-{scan_id}.log"
        log_path.parent.mkdir(exist_ok=True)
        settings.set("LOG_FILE", str(log_path), priority="cmdline")
        faults = FaultLines(log_path)
    committer = None
    try:
        process = CrawlerProcess(settings)
        if faults:
            logging.getLogger().addHandler(faults)
        # what the crawl stores is committed about every COMMIT_SECONDS, not once per write: a
        # killed scan loses at most that much, and the next scan of the site fetches it again
        with store.batched_writes(COMMIT_SECONDS):
            process.crawl(SiteSpider)  # installs Scrapy's reactor
            from twisted.internet import task

            committer = task.LoopingCall(store.commit_writes)  # also while the crawl waits on the network
            committer.start(COMMIT_SECONDS, now=False)
            gc.freeze()  # and so is the crawl's machinery, built by now
            process.start()
        # a scan whose pages the detectors could not examine is failed, not finished: the next scan
        # examines its pages again instead of re-sighting what this one found
        ok, why = worker.outcome(built)
        if ok != "ok" or worker.lost:
            raise WorkerError(f"扫描的检测工作进程已中断（worker process failed），本次扫描记为失败，下次扫描将重新检查其页面：{worker.lost or why}")
        status = "interrupted" if ctx.stats["close_reason:shutdown"] else "finished"
        ledger_sites = cross_check_ledger(store, scan_id)
    finally:
        if committer is not None and committer.running:
            committer.stop()
        if faults:
            logging.getLogger().removeHandler(faults)
        worker.close()
        warc.close()
        summary = store.finish_scan(scan_id, status)
        summary["ocr_runs"] = ctx.stats["ocr_runs"]
        summary["ocr_cached"] = ctx.stats["ocr_cached"]
        if ledger_sites is not None:  # the store has an institution ledger: each site's institution
            summary["ledger"] = ledger_sites
        if "index_pending" in ctx.stats:  # Elasticsearch configured: what still waits for the node
            summary["index_pending"] = ctx.stats["index_pending"]
        CONTEXTS.pop(scan_id, None)
        store.close()
        gc.set_threshold(*thresholds)  # what gc.freeze() froze stays frozen: the process ends with its scan
    return summary
