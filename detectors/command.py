"""``jianfu detect``: JSON lines with a "text" field on stdin → the same lines plus "findings".

Each text is read by the rules and compared with the precedent library (``detectors.precedents``):
rule findings cite their closest precedent, and a text close to a precedent on which no rule
fired gets a finding of tier ``suspected``. With ``--store``, the findings reviewed in that store
are precedents too.

Input is read as bytes and decoded line by line as UTF-8 whatever the locale says, so a line
that is not UTF-8 (or not JSON, or has no string "text") is reported on stderr by its number and
the other lines go on; the exit code is then 1. Output is UTF-8 JSON lines; a lone surrogate
(from a JSON ``\\ud800`` escape) is written back as that escape.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import BinaryIO


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("detect", help="detect violations in JSON lines read from stdin")
    p.add_argument("--explain", action="store_true", help="include why each finding fired")
    p.add_argument("--store", help="also use the findings reviewed in this store as precedents")
    p.set_defaults(func=run)


def parse_line(raw: bytes, lineno: int) -> dict:
    """One input line → its object; ValueError (UnicodeDecodeError included) says what is wrong."""
    try:
        line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at byte {e.start + 1})") from None
    obj = json.loads(line)
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        raise ValueError('expected an object with a string "text" field')
    return obj


def run(args: argparse.Namespace, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> int:
    # imported here: every other command (a scan's crawl process among them) builds this parser too
    from detectors.precedents import default_precedent_detector, reviewed_precedents

    detector = default_precedent_detector()
    if args.store:
        from store.command import open_existing

        with open_existing(args.store) as store:
            detector = detector.with_precedents(reviewed_precedents(store.reviewed_findings()))
    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout.buffer
    bad = 0
    for lineno, raw in enumerate(stdin, 1):
        if not raw.strip():
            continue
        try:
            obj = parse_line(raw, lineno)
        except ValueError as e:
            bad += 1
            print(f"jianfu detect: line {lineno}: {e}", file=sys.stderr, flush=True)
            continue
        obj["findings"] = [f.to_dict(explain=args.explain) for f in detector.detect(obj["text"])]
        out = json.dumps(obj, ensure_ascii=False) + "\n"
        stdout.write(out.encode("utf-8", "backslashreplace"))  # a lone surrogate → its JSON escape
        stdout.flush()
    return 1 if bad else 0
