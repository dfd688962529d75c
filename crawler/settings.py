"""Scrapy settings for jianfu scans. ``crawler.runner`` layers per-scan values on top."""

from scrapy.settings import default_settings as scrapy_defaults

BOT_NAME = "jianfu"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"

USER_AGENT = "Mozilla/5.0 (compatible; jianfu/0.1; 双减 compliance monitor)"
ROBOTSTXT_OBEY = True
ROBOTSTXT_PARSER = "scrapy.robotstxt.ProtegoRobotParser"

CONCURRENT_REQUESTS = 16
# Items per response processed at once. Scrapy starts this many asyncio workers for *every*
# response; the default 100 halves crawl throughput here, and OCR is serialised anyway.
CONCURRENT_ITEMS = 8
CONCURRENT_REQUESTS_PER_DOMAIN = 8
DOWNLOAD_DELAY = 0
DOWNLOAD_TIMEOUT = 20
DOWNLOAD_MAXSIZE = 20 * 1024 * 1024      # also caps decompressed size (gzip bombs)
DOWNLOAD_WARNSIZE = 8 * 1024 * 1024
RETRY_ENABLED = True
RETRY_TIMES = 1
REDIRECT_MAX_TIMES = 10
DEPTH_LIMIT = 0                          # the spider limits depth itself (images are not pages)
HTTPERROR_ALLOW_ALL = False
COOKIES_ENABLED = True
TELNETCONSOLE_ENABLED = False
LOG_LEVEL = "WARNING"
REQUEST_FINGERPRINTER_IMPLEMENTATION = "2.7"
TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
FEED_EXPORT_ENCODING = "utf-8"
# a development-time lint that re-parses a callback's source whenever its bound-method cache entry
# was dropped: ~40 source parses per 500-page scan (bench/bench_rescan.py)
WARN_ON_GENERATOR_RETURN_VALUE = False

DOWNLOADER_MIDDLEWARES = {
    "crawler.middlewares.PrivateAddressGuard": 50,
    "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware": None,
    "crawler.robots.RobotsPolicy": 100,               # RFC 9309: a robots.txt answering 5xx disallows all
    "crawler.incremental.ConditionalRequests": 900,   # outside capture: sees the raw 304
    "crawler.middlewares.CaptureMiddleware": 950,
}
ITEM_PIPELINES = {
    "crawler.pipelines.CapturePipeline": 300,
}
EXTENSIONS = {
    "crawler.progress.Progress": 500,
    "crawler.redirects.RedirectOutcomes": 510,
}
# Scrapy's own extensions less those a scan never uses, which are then not even imported (a None
# in EXTENSIONS would still import them): remote control (on by default since Scrapy 2.19: an
# HTTP server on localhost that runs Python code sent to it, and ~0.2 s of aiohttp import per
# scan), the telnet console, feed exports, job-directory state, memory debugging, AutoThrottle
UNUSED_EXTENSIONS = {
    "scrapy.extensions.remote_control.RemoteControl",
    "scrapy.extensions.telnet.TelnetConsole",
    "scrapy.extensions.feedexport.FeedExporter",
    "scrapy.extensions.spiderstate.SpiderState",
    "scrapy.extensions.memdebug.MemoryDebugger",
    "scrapy.extensions.throttle.AutoThrottle",
}
EXTENSIONS_BASE = {k: v for k, v in scrapy_defaults.EXTENSIONS_BASE.items() if k not in UNUSED_EXTENSIONS}
REMOTE_CONTROL_ENABLED = False

# jianfu's own settings (set per scan by crawler.runner)
JIANFU_MAX_DEPTH = 3
JIANFU_MAX_PAGES = 500
JIANFU_PROGRESS_SECONDS = 2.0
JIANFU_INCREMENTAL = True                # conditional requests + unchanged-page skip (crawler.incremental)
