"""crawler — the Scrapy project: what to fetch and how, and handing every capture on.

The spider (``crawler.spiders.site``) decides *what* to fetch: same-site pages from the seeds,
within depth and page limits, and every image a page shows. Middlewares guard *how*: robots.txt,
the private-address guard, and capture (every response to WARC, every fetch and failure to the
store). The item pipeline hands each page and image to the detectors and the store. A spider
never calls a detector directly. ``crawler.runner.run_scan`` runs one scan in this process.
"""
