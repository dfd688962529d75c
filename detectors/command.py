"""``jianfu detect``: JSON lines with a "text" field on stdin → the same lines plus "findings"."""

from __future__ import annotations

import argparse
import json
import sys

from detectors.engine import default_detector


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("detect", help="detect violations in JSON lines read from stdin")
    p.add_argument("--explain", action="store_true", help="include why each finding fired")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    detector = default_detector()
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
