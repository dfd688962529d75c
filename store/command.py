"""``jianfu findings`` (list what a store found) and ``jianfu review`` (confirm or dismiss)."""

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
                "explanation", "first_seen_at", "last_seen_at", "first_scan_id", "last_scan_id")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("findings", help="list the findings in a store")
    p.add_argument("--store", required=True)
    p.add_argument("--format", choices=["jsonl", "table"], default="table")
    p.add_argument("--scan", help="only findings seen in this scan id")
    p.add_argument("--category", choices=CATEGORIES)
    p.add_argument("--status", choices=["open", "confirmed", "dismissed"])
    p.set_defaults(func=run_findings)

    r = sub.add_parser("review", help="mark findings confirmed, dismissed or open again")
    r.add_argument("ids", nargs="+", metavar="FINDING_ID")
    r.add_argument("--store", required=True)
    r.add_argument("--status", required=True, choices=["open", "confirmed", "dismissed"])
    r.set_defaults(func=run_review)

    from store import campaigns

    campaigns.register(sub)  # jianfu campaigns


def open_existing(path: str) -> Store:
    from jianfu.cli import CommandError

    if not store_exists(path):
        raise CommandError(f"no jianfu store at {path} (run `jianfu scan ... --store {path}` first)")
    return Store(path)


def run_findings(args: argparse.Namespace) -> int:
    with open_existing(args.store) as store:
        rows = store.findings(scan_id=args.scan, category=args.category, status=args.status)
        if args.format == "jsonl":
            for row in rows:
                sys.stdout.write(json.dumps({k: row[k] for k in JSONL_FIELDS}, ensure_ascii=False) + "\n")
        else:
            print_table(list(rows))
    return 0


def run_review(args: argparse.Namespace) -> int:
    from jianfu.cli import CommandError

    with open_existing(args.store) as store:
        known = {r["id"] for r in store.findings(ids=args.ids)}
        missing = [i for i in args.ids if i not in known]
        if missing:
            raise CommandError(f"unknown finding id(s): {', '.join(missing)}")
        store.set_status(args.ids, args.status)
    print(f"{len(args.ids)} finding(s) marked {args.status}")
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
    cols = [("id", 10), ("category", 21), ("institution", 18), ("matched", 24), ("source", 6), ("url", 44)]
    print("  ".join(_fit(name, w) for name, w in cols))
    print("  ".join("-" * w for _, w in cols))
    for r in rows:
        url = r["url"] if r["source"] == "text" else f"{r['url']} ▸ {r['image_url'].rsplit('/', 1)[-1]}"
        vals = [r["id"][:10], r["category"], r["institution"] or "", r["text"], r["source"], url]
        print("  ".join(_fit(v, w) for v, (_, w) in zip(vals, cols, strict=True)))
    print(f"{len(rows)} finding(s)")
