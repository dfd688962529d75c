"""``jianfu export`` (build an evidence packet) and ``jianfu verify`` (check one)."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a signed evidence packet (WACZ, report, manifest)",
                       description="Export findings and their captures as one signed evidence packet (.zip).")
    p.add_argument("--store", required=True, help="store directory")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--case", nargs="+", action="extend", metavar="ID",
                       help="case id(s) (`jianfu findings --by case`; a unique prefix of ≥ 6 characters will do)")
    which.add_argument("--finding", nargs="+", action="extend", metavar="ID",
                       help="finding id(s) (a unique prefix of ≥ 6 characters will do)")
    which.add_argument("--institution", metavar="NAME", help="every finding of this institution (latest capture)")
    which.add_argument("--scan", metavar="SCAN_ID", help="every finding seen in this scan, and the scan's capture")
    p.add_argument("--out", required=True, metavar="FILE", help="packet to write (e.g. case-001.jfpkt.zip)")
    p.add_argument("--examiner", help="name of the person exporting (default: user@host)")
    p.add_argument("--tsa-url", help="RFC 3161 timestamp authority URL (default: $JIANFU_TSA_URL; none: no timestamp)")
    p.add_argument("--skip-missing", action="store_true",
                   help="leave out findings whose capture is missing instead of failing")
    p.add_argument("--include-dismissed", action="store_true", help="also export findings marked dismissed")
    p.add_argument("--no-pdf", action="store_true", help="skip report.pdf (no Chromium)")
    p.add_argument("--json", action="store_true", help="print the export summary as JSON")
    p.set_defaults(func=run_export)

    v = sub.add_parser("verify", help="check an evidence packet's hashes, signature and timestamp")
    v.add_argument("packet", metavar="FILE")
    v.add_argument("--pubkey", metavar="PEM", help="the issuer's public key: fail unless the packet is signed by it")
    v.add_argument("--json", action="store_true", help="print the verdict as JSON")
    v.set_defaults(func=run_verify)


def run_export(args: argparse.Namespace) -> int:
    from evidence import timestamp
    from evidence.packet import ExportError, ExportRequest, export
    from jianfu.cli import CommandError

    req = ExportRequest(finding_ids=args.finding or [], case_ids=args.case or [], institution=args.institution, scan_id=args.scan,
                        examiner=args.examiner, tsa_url=timestamp.configured_url(args.tsa_url),
                        skip_missing=args.skip_missing, include_dismissed=args.include_dismissed,
                        pdf=not args.no_pdf)
    try:
        summary = export(args.store, args.out, req)
    except ExportError as e:
        raise CommandError(str(e)) from e
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
        return 0
    for w in summary["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    print(f"wrote {summary['out']}: {summary['cases']} case(s), {summary['findings']} finding(s), "
          f"{summary['files']} files, "
          f"{summary['size'] / 1e6:.2f} MB in {summary['timings']['total']:.1f}s")
    print(f"  signed with Ed25519 key {summary['key_fingerprint']}")
    print("  timestamp: " + ("RFC 3161 token stored (manifest.tsr)" if summary["timestamped"]
                             else "none (no TSA configured: --tsa-url or $JIANFU_TSA_URL)"))
    print(f"  check it with: jianfu verify {summary['out']}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from pathlib import Path

    from evidence.verify import dumps, format_verdict, verify
    from jianfu.cli import CommandError

    path = Path(args.packet)
    if not path.is_file():
        raise CommandError(f"no such packet: {path}")
    pem = None
    if args.pubkey:
        try:
            pem = Path(args.pubkey).read_bytes()
        except OSError as e:
            raise CommandError(f"cannot read --pubkey {args.pubkey}: {e.strerror or e}") from e
    verdict = verify(path, pem)
    print(dumps(verdict) if args.json else format_verdict(verdict))
    return 0 if verdict.ok else 1
