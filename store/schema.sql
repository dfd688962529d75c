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
  last_scan_id TEXT NOT NULL,
  case_id TEXT                                  -- cases.id (store/cases.py); index in Store.ADDED_INDEXES
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

-- Re-scans (crawler/incremental.py, crawler/spiders/site.py): every address a page was fetched at.
-- `url` is the page's canonical address (store.db.canonical_page_url: `/` and `/index.html`, a
-- trailing slash, `utm_…` parameters are one page), the key of pages.url and findings.url.
CREATE TABLE IF NOT EXISTS page_addresses (
  scan_id TEXT NOT NULL,
  url TEXT NOT NULL,                            -- canonical page URL
  fetched_url TEXT NOT NULL,                    -- the address as fetched (after redirects)
  content_sha256 TEXT,
  warc_file TEXT,
  warc_offset INTEGER,
  UNIQUE (scan_id, fetched_url)
);
CREATE INDEX IF NOT EXISTS page_addresses_url ON page_addresses(url);
-- Precedents (detectors/precedents.py): findings.tier ('rule' | 'suspected') and findings.precedent
-- (the closest precedent, cited in Chinese) are added to findings by Store.ADDED_COLUMNS.
-- Cases (store/cases.py): one institution × one ad (an image by its sha256, or a page's text by
-- its canonical URL) × its violations. Summary columns are kept by save_findings/resight; the
-- review status is the investigators' and survives re-scans. findings.case_id points here.
CREATE TABLE IF NOT EXISTS cases (
  id TEXT PRIMARY KEY,                          -- deterministic, see store.cases.case_id
  institution TEXT,                             -- name as scanned (NULL when the seed had none)
  institution_key TEXT NOT NULL,                -- the name, or the site (scheme://host) when unnamed
  district TEXT,
  source TEXT NOT NULL,                         -- text | image
  ad_key TEXT NOT NULL,                         -- image sha256 | canonical page URL
  url TEXT NOT NULL,                            -- canonical page URL (text) | a page showing the image
  image_url TEXT,
  image_sha256 TEXT,
  title TEXT,                                   -- the page's title (newest capture)
  categories TEXT NOT NULL DEFAULT '',          -- comma-separated category ids, sorted
  severity TEXT NOT NULL DEFAULT 'low',         -- highest of its findings
  severity_rank INTEGER NOT NULL DEFAULT 1,     -- 3 high, 2 medium, 1 low (sorting)
  violations INTEGER NOT NULL DEFAULT 0,        -- distinct rule × matched words
  findings INTEGER NOT NULL DEFAULT 0,          -- finding rows (one violation on 3 pages = 3)
  pages INTEGER NOT NULL DEFAULT 0,             -- distinct page URLs showing it
  status TEXT NOT NULL DEFAULT 'open',          -- open | confirmed | dismissed
  proposed_status TEXT,                         -- a proposal waiting for approval
  proposal_id TEXT,                             -- its case_reviews row
  first_seen_at TEXT NOT NULL,
  last_seen_at TEXT NOT NULL,
  first_scan_id TEXT NOT NULL,
  last_scan_id TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS cases_last_seen ON cases(last_seen_at, id);
CREATE INDEX IF NOT EXISTS cases_first_seen ON cases(first_seen_at, id);
CREATE INDEX IF NOT EXISTS cases_institution ON cases(institution_key, id);
CREATE INDEX IF NOT EXISTS cases_district ON cases(district, last_seen_at);
-- (no index on status alone: nearly every case is open, and the planner would take it over the district's)
CREATE INDEX IF NOT EXISTS cases_severity ON cases(severity_rank, id);

-- Review history of a case, append-only: who, when, from → to, why; a proposal and its approval
-- or rejection are separate rows (proposal_id links them). action: set | propose | approve |
-- reject | finding (a single finding reviewed with `jianfu review FINDING_ID`).
CREATE TABLE IF NOT EXISTS case_reviews (
  id TEXT PRIMARY KEY,
  case_id TEXT NOT NULL,
  seq INTEGER NOT NULL,                         -- 1, 2, … per case
  at TEXT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  from_status TEXT,
  to_status TEXT NOT NULL,
  reason TEXT,
  proposal_id TEXT,
  finding_id TEXT,
  UNIQUE (case_id, seq)
);
-- ── institution ledger (台账; ledger/, SQL in store/ledger.py) ─────────────────────────────────
-- One row per institution, keyed on its unified social credit code; list fields are JSON arrays.
CREATE TABLE IF NOT EXISTS institutions (
  credit_code TEXT PRIMARY KEY,                 -- 统一社会信用代码 (GB 32100-2015, check character valid)
  name TEXT NOT NULL,
  licence_no TEXT,                              -- 办学许可证号
  type TEXT NOT NULL,                           -- subject (学科类) | non_subject (非学科类)
  field TEXT,                                   -- 非学科类: 体育 | 文化艺术 | 科技 | …
  status TEXT NOT NULL,                         -- approved (白名单) | pending | blacklisted | revoked | cancelled
  district TEXT,
  address TEXT,
  sites TEXT NOT NULL DEFAULT '[]',             -- web site URLs
  wechat TEXT NOT NULL DEFAULT '[]',            -- WeChat official accounts
  mini_programs TEXT NOT NULL DEFAULT '[]',
  phones TEXT NOT NULL DEFAULT '[]',
  digest TEXT NOT NULL,                         -- hash of the fields above: an unchanged row is not rewritten
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  last_import_id TEXT,                          -- the last import whose file had this row …
  last_import_line INTEGER                      -- … and on which line
);
CREATE INDEX IF NOT EXISTS institutions_district ON institutions(district, status);

-- What links a site to its institution: host of each web site, licence, WeChat ids, phones, name.
CREATE TABLE IF NOT EXISTS institution_keys (
  kind TEXT NOT NULL,                           -- host | licence | wechat | mini_program | phone | name
  value TEXT NOT NULL,                          -- normalised (ledger.codes / store.ledger.key_values)
  credit_code TEXT NOT NULL,
  PRIMARY KEY (kind, value, credit_code)
);
CREATE INDEX IF NOT EXISTS institution_keys_code ON institution_keys(credit_code);

-- Every change an import made to an institution: {field: [old, new]}.
CREATE TABLE IF NOT EXISTS institution_history (
  credit_code TEXT NOT NULL,
  import_id TEXT NOT NULL,
  changed_at TEXT NOT NULL,
  change TEXT NOT NULL,                         -- added | changed
  fields TEXT NOT NULL                          -- JSON
);
CREATE INDEX IF NOT EXISTS institution_history_code ON institution_history(credit_code);

CREATE TABLE IF NOT EXISTS ledger_imports (
  id TEXT PRIMARY KEY,
  file TEXT NOT NULL,
  sha256 TEXT,
  imported_at TEXT NOT NULL,
  added INTEGER NOT NULL DEFAULT 0,
  changed INTEGER NOT NULL DEFAULT 0,
  unchanged INTEGER NOT NULL DEFAULT 0,
  rejected INTEGER NOT NULL DEFAULT 0,
  rejections TEXT NOT NULL DEFAULT '[]'         -- JSON [{line, reason}]
);

-- Which institution each scanned site was linked to, and how (ledger/scan.py).
CREATE TABLE IF NOT EXISTS scan_sites (
  scan_id TEXT NOT NULL,
  site TEXT NOT NULL,                           -- the seed's institution name (or host when unnamed)
  credit_code TEXT,                             -- NULL: no ledger entry found
  linked_by TEXT,                               -- seed | domain | credit_code | licence | qr
  detail TEXT,
  PRIMARY KEY (scan_id, site)
);
CREATE INDEX IF NOT EXISTS scan_sites_code ON scan_sites(credit_code);
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


-- ── tips and check-now (intake/, SQL in store/intake.py) ──────────────────────────────────────
-- A tip (举报): where it came from, when, the tipster's contact only as far as it was entered, what
-- was reported, and what came of it. urls is a JSON list; its uploads are submissions (tip_id).
CREATE TABLE IF NOT EXISTS tips (
  id TEXT PRIMARY KEY,                          -- JB-YYYYMMDD-xxxxxx
  received_at TEXT NOT NULL,                    -- when the tip came in (ISO-8601 UTC)
  channel TEXT NOT NULL,                        -- phone | mail | online_form | forwarded | visit | other
  forwarded_by TEXT,                            -- the office that forwarded it (channel forwarded)
  contact TEXT,                                 -- the tipster's contact, as entered (may be empty)
  institution TEXT,
  district TEXT,
  text TEXT NOT NULL DEFAULT '',                -- what was reported, in the tipster's words
  urls TEXT NOT NULL DEFAULT '[]',              -- JSON list of reported links
  outcome TEXT NOT NULL DEFAULT 'open',         -- open | case_opened | no_violation | referred | closed
  outcome_note TEXT,
  recorded_by TEXT,
  recorded_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tips_received ON tips(received_at, id);

-- The cases a tip led to (found in its submissions, or linked by hand).
CREATE TABLE IF NOT EXISTS tip_cases (
  tip_id TEXT NOT NULL,
  case_id TEXT NOT NULL,
  linked_at TEXT NOT NULL,
  linked_by TEXT,                               -- check (its submissions' findings) | a person
  PRIMARY KEY (tip_id, case_id)
);
CREATE INDEX IF NOT EXISTS tip_cases_case ON tip_cases(case_id);

-- Everything sent in to be checked now (jianfu check, 即时检查, a tip's uploads and links): the
-- original bytes are the blob `sha256` and a resource record in the scan's WARC.
CREATE TABLE IF NOT EXISTS submissions (
  id TEXT PRIMARY KEY,
  received_at TEXT NOT NULL,
  kind TEXT NOT NULL,                           -- image | pdf | html | mhtml | url
  name TEXT,                                    -- file name as sent (never used to tell the type)
  url TEXT,                                     -- the link checked (kind url)
  sha256 TEXT,                                  -- the original bytes (a page's capture for a url)
  bytes INTEGER,
  media_type TEXT,                              -- told from the bytes
  submitted_by TEXT,                            -- who sent it in (--source)
  institution TEXT,
  district TEXT,
  tip_id TEXT,                                  -- tips.id when it came with a tip
  scan_id TEXT,                                 -- the scan holding its pages, images and findings
  page_url TEXT,                                -- the address its findings are recorded under
  status TEXT NOT NULL,                         -- checked | refused | failed
  reason TEXT,                                  -- why refused or failed, in Chinese
  findings INTEGER NOT NULL DEFAULT 0,
  details TEXT NOT NULL DEFAULT '{}'            -- JSON: pages, images, photo straightening
);
CREATE INDEX IF NOT EXISTS submissions_tip ON submissions(tip_id);
CREATE INDEX IF NOT EXISTS submissions_scan ON submissions(scan_id);
