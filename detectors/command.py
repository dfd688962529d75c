"""``jianfu detect``: JSON lines with a "text" field on stdin → the same lines plus "findings".

Each text is read by the rules and compared with the precedent library (``detectors.precedents``):
rule findings cite their closest precedent, and a text close to a precedent on which no rule
fired gets a finding of tier ``suspected``. With ``--store``, the findings reviewed in that store
are precedents too.
"""

from __future__ import annotations

import argparse
import json
import sys

from detectors.precedents import default_precedent_detector, reviewed_precedents


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("detect", help="detect violations in JSON lines read from stdin")
    p.add_argument("--explain", action="store_true", help="include why each finding fired")
    p.add_argument("--store", help="also use the findings reviewed in this store as precedents")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    detector = default_precedent_detector()
    if args.store:
        from store.command import open_existing

        with open_existing(args.store) as store:
            detector = detector.with_precedents(reviewed_precedents(store.reviewed_findings()))
    bad = 0
    for lineno, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                raise ValueError('expected an object with a string "text" field')
        except ValueError as e:
            bad += 1
            print(f"jianfu detect: line {lineno}: {e}", file=sys.stderr)
            continue
        obj["findings"] = [f.to_dict(explain=args.explain) for f in detector.detect(obj["text"])]
        sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    return 1 if bad else 0
