"""The real corpora beside the project (``../shared/corpus``), split by source into a tuning part
and a sealed part.

Rules are written against the tuning part only. The sealed part is scored (per category, as
figures) once per round and its texts are never read: it is the project's honest estimate of how
the detectors do on real cases they were not written from. The split is by the source's host, so
several texts quoted from one page or one site always fall on the same side, and it is fixed (a
hash of the host, not a random draw), so every run and every engineer sees the same parts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

CORPUS_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
# (name, violations file, compliant file)
SETS = (("dev", "dev_violations.jsonl", "dev_compliant.jsonl"),
        ("dev2", "dev2_violations.jsonl", "dev2_compliant.jsonl"))
SEALED_TENTHS = 3  # about 30 % of the sources are sealed


@dataclass(frozen=True)
class Record:
    text: str
    categories: tuple[str, ...]  # empty for a compliant text; the first is the main category
    source_url: str
    source_title: str
    note: str

    @property
    def host(self) -> str:
        return (urlsplit(self.source_url).hostname or self.source_url).lower()

    @property
    def sealed(self) -> bool:
        return is_sealed_source(self.source_url)


def is_sealed_source(source_url: str) -> bool:
    host = (urlsplit(source_url).hostname or source_url).lower()
    return int(hashlib.sha256(host.encode("utf-8")).hexdigest(), 16) % 10 < SEALED_TENTHS


def available(directory: Path = CORPUS_DIR) -> bool:
    return all((directory / v).exists() and (directory / c).exists() for _, v, c in SETS)


def load(filename: str, directory: Path = CORPUS_DIR) -> list[Record]:
    rows = []
    with open(directory / filename, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                d = json.loads(line)
                rows.append(Record(d["text"], tuple(d.get("categories") or ()), d.get("source_url", ""),
                                   d.get("source_title", ""), d.get("note", "")))
    return rows


def split(records: list[Record]) -> tuple[list[Record], list[Record]]:
    """(tuning, sealed)."""
    return [r for r in records if not r.sealed], [r for r in records if r.sealed]


def tuning(filename: str, directory: Path = CORPUS_DIR) -> list[Record]:
    """The only part of a corpus file that rule writers may read."""
    return split(load(filename, directory))[0]
