"""store — the embedded record of everything jianfu captured and found.

One directory per store: ``jianfu.sqlite3`` (SQLite in WAL mode: scans, fetches, pages, images,
findings and their sightings), ``blobs/`` (content-addressed image and screenshot bytes) and
``warc/`` (the archive of raw responses). Finding ids are deterministic, so a re-scan updates
``last_seen`` instead of duplicating a finding.
"""

from store.db import Store, StoreError, canonical_page_url, finding_id

__all__ = ["Store", "StoreError", "canonical_page_url", "finding_id"]
