CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS scans (
  id TEXT PRIMARY KEY,
  started_at TEXT NOT NULL,
  finished_at TEXT,
  status TEXT NOT NULL DEFAULT 'running',      -- running | finished | failed | interrupted
  seeds TEXT NOT NULL,                          -- JSON list
  settings TEXT NOT NULL DEFAULT '{}',          -- JSON
  target TEXT,                                  -- scan-plan target name, when scheduled
  pages INTEGER NOT NULL DEFAULT 0,
  images INTEGER NOT NULL DEFAULT 0,
  errors INTEGER NOT NULL DEFAULT 0
);

-- Every request jianfu made, successful or not, with why it failed.
CREATE TABLE IF NOT EXISTS fetches (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  scan_id TEXT NOT NULL REFERENCES scans(id),
  url TEXT NOT NULL,
  kind TEXT NOT NULL DEFAULT 'page',            -- page | image | robots | other
  status INTEGER,
  headers TEXT,                                 -- JSON
  elapsed_ms REAL,
  fetched_at TEXT NOT NULL,
  ip TEXT,
  error TEXT,                                   -- short error class, NULL when fine
  reason TEXT,                                  -- human-readable reason
  warc_file TEXT,
  warc_offset INTEGER
);
CREATE INDEX IF NOT EXISTS fetches_scan ON fetches(scan_id);
CREATE INDEX IF NOT EXISTS fetches_url ON fetches(url);          -- validators of a URL's last fetch

CREATE TABLE IF NOT EXISTS pages (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  scan_id TEXT NOT NULL REFERENCES scans(id),
  url TEXT NOT NULL,
  final_url TEXT,
  status INTEGER,
  content_type TEXT,
  encoding TEXT,
  title TEXT,
  text TEXT,
  content_sha256 TEXT,
  fetched_at TEXT NOT NULL,
  depth INTEGER,
  institution TEXT,
  rendered INTEGER NOT NULL DEFAULT 0,
  screenshot_sha256 TEXT,                       -- blob
  text_boxes TEXT,                              -- JSON [{start,end,box}] for rendered pages
  duplicate_of TEXT,                            -- same bytes as this page URL of the scan (not re-detected)
  warc_file TEXT,
  warc_offset INTEGER,
  UNIQUE (scan_id, url)
);
CREATE INDEX IF NOT EXISTS pages_url ON pages(url);              -- a URL's last capture (re-scans)

-- The detector code and rule packs a scan used (crawler/incremental.py): an unchanged page is
-- re-examined only when these changed since its last capture.
CREATE TABLE IF NOT EXISTS scan_detectors (
  scan_id TEXT PRIMARY KEY,
  fingerprint TEXT NOT NULL                     -- hash of the detector code and rule packs
);

CREATE TABLE IF NOT EXISTS images (
  sha256 TEXT PRIMARY KEY,
  bytes INTEGER,
  width INTEGER,
  height INTEGER,
  format TEXT,
  phash TEXT,
  ocr_engine TEXT,
  ocr TEXT,                                     -- JSON [{text, box, confidence}]
  qr TEXT,                                      -- JSON list of decoded payloads
  error TEXT,
  first_seen_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS page_images (
  scan_id TEXT NOT NULL,
  page_url TEXT NOT NULL,
  image_url TEXT NOT NULL,
  sha256 TEXT,
  error TEXT,
  UNIQUE (scan_id, page_url, image_url)
);

-- QR codes decoded from ad images, and what the scan did with each payload.
CREATE TABLE IF NOT EXISTS qr_links (
  scan_id TEXT NOT NULL,
  page_url TEXT NOT NULL,
  image_url TEXT NOT NULL,
  sha256 TEXT NOT NULL,                         -- the image
  payload TEXT NOT NULL,                        -- decoded text, as read
  action TEXT NOT NULL,                         -- queued | outside | not_a_url | page_limit
  reason TEXT,                                  -- one line for a person
  UNIQUE (scan_id, page_url, image_url, payload)
);

CREATE TABLE IF NOT EXISTS findings (
  id TEXT PRIMARY KEY,                          -- deterministic, see store.db.finding_id
  category TEXT NOT NULL,
  rule_id TEXT NOT NULL,
  text TEXT NOT NULL,
  start INTEGER NOT NULL,
  "end" INTEGER NOT NULL,
  score REAL NOT NULL,
  severity TEXT NOT NULL,
  basis TEXT NOT NULL,
  explanation TEXT,                             -- JSON list
  context TEXT,
  url TEXT NOT NULL,
  source TEXT NOT NULL,                         -- text | image
  image_url TEXT,
  image_sha256 TEXT,
  boxes TEXT,                                   -- JSON list of boxes (image or screenshot coords)
  institution TEXT,
  district TEXT,
  status TEXT NOT NULL DEFAULT 'open',          -- open | confirmed | dismissed
  -- first/last seen summarise `sightings` on purpose: every listing, search document and alert
  -- needs them, and save_findings/resight keep both in one transaction
  first_seen_at TEXT NOT NULL,
  last_seen_at TEXT NOT NULL,
  first_scan_id TEXT NOT NULL,
  last_scan_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS findings_url ON findings(url);
CREATE INDEX IF NOT EXISTS findings_cat ON findings(category);

-- One row per (finding, scan) in which it was seen: drives new / still present / gone.
CREATE TABLE IF NOT EXISTS sightings (
  finding_id TEXT NOT NULL REFERENCES findings(id),
  scan_id TEXT NOT NULL REFERENCES scans(id),
  seen_at TEXT NOT NULL,
  PRIMARY KEY (finding_id, scan_id)
);

-- Findings whose search document must still be sent to an external index (Elasticsearch).
-- Filled in the same transaction as the change (save_findings, set_status); one row per finding,
-- `version` bumps on each change so a drain removes only what it actually sent. See search/indexer.py.
CREATE TABLE IF NOT EXISTS index_outbox (
  finding_id TEXT PRIMARY KEY,
  version INTEGER NOT NULL DEFAULT 1,
  queued_at TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,          -- failed sends of any kind (node down included)
  last_error TEXT,
  rejected INTEGER NOT NULL DEFAULT 0,          -- times the index refused this version (per-document error)
  retry_at REAL                                 -- unix time before which a rejected document is not re-sent
);
-- (stores made before `rejected`/`retry_at` get them from Store._migrate)

-- scale-out (scheduler/queue.py): one row per scan job sent to the Celery workers. The job's
-- lease (renewed by the worker while its crawl runs) is what makes a job run once: a delivery of
-- a job that is `done`, or `running` under a live lease, does not start another crawl.
CREATE TABLE IF NOT EXISTS scan_jobs (
  id TEXT PRIMARY KEY,                          -- uuid, carried in the message
  target TEXT NOT NULL,
  trigger TEXT NOT NULL,                        -- schedule | run-now | rerun
  state TEXT NOT NULL DEFAULT 'queued',         -- queued | running | done | skipped
  payload TEXT NOT NULL,                        -- JSON: what the worker runs (store, seeds, limits)
  queued_at TEXT NOT NULL,
  published_at TEXT,                            -- NULL: the broker did not take it yet (re-sent)
  worker TEXT,                                  -- host:pid of the worker holding the lease
  lease_until REAL,                             -- unix time; an expired lease may be taken over
  attempts INTEGER NOT NULL DEFAULT 0,          -- deliveries that started a crawl
  run_id INTEGER,                               -- the runs row of the current attempt
  finished_at TEXT
);
CREATE INDEX IF NOT EXISTS scan_jobs_state ON scan_jobs(state, target);
