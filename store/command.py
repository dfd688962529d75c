"""``jianfu findings`` (list what a store found, by finding or by case) and ``jianfu review``
(confirm or dismiss cases or single findings)."""

from __future__ import annotations

import argparse
import json
import sys
import unicodedata

from detectors.model import CATEGORIES
from store.backends import store_exists
from store.db import Store

JSONL_FIELDS = ("id", "url", "source", "image_url", "category", "rule_id", "text", "start", "end", "score",
                "severity", "basis", "context", "institution", "district", "status", "boxes", "qr",
                "explanation", "first_seen_at", "last_seen_at", "first_scan_id", "last_scan_id", "tier",
                "precedent", "case_id",
                "credit_code", "ledger")  # the institution in the ledger and its record (ledger/scan.py)
TIERS = {"rule": "规则", "suspected": "疑似"}
CASE_JSONL_FIELDS = ("id", "institution", "district", "source", "url", "image_url", "image_sha256", "title",
                     "categories", "severity", "violations", "findings", "pages", "status", "proposed_status",
                     "first_seen_at", "last_seen_at", "first_scan_id", "last_scan_id")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("findings", help="list the findings in a store")
    p.add_argument("--store", required=True)
    p.add_argument("--format", choices=["jsonl", "table"], default="table")
    p.add_argument("--scan", help="only findings seen in this scan id")
    p.add_argument("--category", choices=CATEGORIES)
    p.add_argument("--status", choices=["open", "confirmed", "dismissed"],
                   help="review status (of each finding; with --by case, of the case)")
    p.add_argument("--by", choices=["finding", "case"], default="finding",
                   help="one row per finding (default) or per case: one institution × one ad × its violations")
    p.add_argument("--tier", choices=list(TIERS), help="rule findings, or suspected (疑似) ones only")
    p.set_defaults(func=run_findings)

    r = sub.add_parser("review", help="mark cases or findings confirmed, dismissed or open again")
    r.add_argument("ids", nargs="+", metavar="ID", help="case id or finding id (a unique prefix of ≥ 6 will do)")
    r.add_argument("--store", required=True)
    r.add_argument("--status", required=True, choices=["open", "confirmed", "dismissed"])
    r.add_argument("--reason", help="why (kept in the case's review history)")
    r.add_argument("--by", dest="actor", help="who decides (default: user@host)")
    r.set_defaults(func=run_review)

    from store import campaigns

    campaigns.register(sub)  # jianfu campaigns


def open_existing(path: str, *, read_only: bool = False) -> Store:
    """An existing store (``CommandError`` when there is none); ``read_only``: see ``Store``."""
    from jianfu.cli import CommandError

    if not store_exists(path):
        raise CommandError(f"no jianfu store at {path} (run `jianfu scan ... --store {path}` first)")
    return Store(path, read_only=read_only)


def run_findings(args: argparse.Namespace) -> int:
    with open_existing(args.store, read_only=True) as store:
        if args.by == "case":
            cases = all_cases(store, scan_id=args.scan, category=args.category, status=args.status)
            if args.format == "jsonl":
                for c in cases:
                    sys.stdout.write(json.dumps({k: c[k] for k in CASE_JSONL_FIELDS}, ensure_ascii=False) + "\n")
            else:
                print_case_table(cases)
            return 0
        rows = store.findings(scan_id=args.scan, category=args.category, status=args.status, tier=args.tier)
        if args.format == "jsonl":
            alternates = store.alternate_url_map()  # the other addresses each page was reached at
            for row in rows:
                out = {k: row[k] for k in JSONL_FIELDS} | {"alternate_urls": alternates.get(row["url"], [])}
                sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
        else:
            print_table(list(rows))
    return 0


def all_cases(store: Store, **filters: object) -> list[dict]:
    """Every case the filters allow (keyset pages), by institution, page, then text before images."""
    filters = {k: v for k, v in filters.items() if v is not None}
    out: list[dict] = []
    after = None
    while True:
        page = store.cases(sort="institution", limit=1000, after=after, **filters)
        out += page
        if len(page) < 1000:
            break
        after = page[-1]["cursor"]
    return sorted(out, key=lambda c: (c["institution_key"], c["url"], c["source"] != "text", c["image_url"] or ""))


def _actor(given: str | None) -> str:
    if given:
        return given
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def run_review(args: argparse.Namespace) -> int:
    from jianfu.cli import CommandError

    with open_existing(args.store) as store:
        case_ids, finding_ids, missing = [], [], []
        for raw in args.ids:
            cid = store.resolve_case_id(raw)
            if cid:
                case_ids.append(cid)
            elif raw in {r["id"] for r in store.findings(ids=[raw])}:
                finding_ids.append(raw)
            else:
                missing.append(raw)
        if missing:
            raise CommandError(f"unknown case or finding id(s): {', '.join(missing)}")
        actor = _actor(args.actor)
        if case_ids:
            store.set_case_status(dict.fromkeys(case_ids), args.status, actor=actor, reason=args.reason)
        if finding_ids:
            store.set_status(finding_ids, args.status, actor=actor, reason=args.reason)
    parts = [f"{len(case_ids)} case(s)"] if case_ids else []
    parts += [f"{len(finding_ids)} finding(s)"] if finding_ids else []
    print(f"{' and '.join(parts)} marked {args.status}")
    return 0


def _width(s: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)


def _fit(s: str, width: int) -> str:
    s = " ".join(s.split())
    out, w = "", 0
    for c in s:
        cw = _width(c)
        if w + cw > width:
            return out + " " * (width - w)
        out += c
        w += cw
    return out + " " * (width - w)


def print_table(rows: list[dict]) -> None:
    cols = [("id", 10), ("tier", 4), ("category", 25), ("institution", 18), ("matched", 24), ("source", 6),
            ("url", 44), ("precedent", 60)]
    print("  ".join(_fit(name, w) for name, w in cols))
    print("  ".join("-" * w for _, w in cols))
    for r in rows:
        url = r["url"] if r["source"] == "text" else f"{r['url']} ▸ {r['image_url'].rsplit('/', 1)[-1]}"
        category = r["category"] + (" ·台账" if r["rule_id"].startswith("ledger.") else "")  # a ledger cross-check
        vals = [r["id"][:10], TIERS.get(r.get("tier") or "rule", r.get("tier") or ""), category,
                r["institution"] or "", r["text"], r["source"], url, r.get("precedent") or ""]
        print("  ".join(_fit(v, w) for v, (_, w) in zip(vals, cols, strict=True)))
    print(f"{len(rows)} finding(s)")


def print_case_table(cases: list[dict]) -> None:
    cols = [("case", 16), ("institution", 18), ("ad", 44), ("viol", 4), ("status", 9), ("first seen", 16),
            ("last seen", 16)]
    print("  ".join(_fit(name, w) for name, w in cols) + "  categories")
    print("  ".join("-" * w for _, w in cols) + "  " + "-" * 10)
    for c in cases:
        if c["source"] == "text":
            ad = c["url"]
        else:
            pages = f" · {c['pages']} pages" if c["pages"] > 1 else ""
            ad = f"image {(c['image_url'] or '').rsplit('/', 1)[-1]}{pages} ▸ {c['url']}"
        status = c["status"] + ("*" if c.get("proposed_status") else "")
        vals = [c["id"], c["institution"] or c["institution_key"], ad, str(c["violations"]), status,
                _minute(c["first_seen_at"]), _minute(c["last_seen_at"])]
        print("  ".join(_fit(v, w) for v, (_, w) in zip(vals, cols, strict=True)) + "  " + ",".join(c["categories"]))
    pending = sum(1 for c in cases if c.get("proposed_status"))
    print(f"{len(cases)} case(s), {sum(c['findings'] for c in cases)} finding(s)"
          + (f"; * = {pending} with a proposal waiting for approval" if pending else ""))


def _minute(iso: str | None) -> str:
    return (iso or "")[:16].replace("T", " ")
