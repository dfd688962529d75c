"""Import a ledger file into a store: stream, validate each row, apply all in one transaction.

A bad row (missing name, bad credit code, unknown type or status, bad web address, a credit code
already on an earlier line) is rejected with its line number and reason and the rest go in; a bad
file (unreadable, no header, wrong encoding half-way) imports nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ledger.reader import LedgerFile, LedgerFileError
from ledger.records import ParsedRow, RowRejected, parse_row
from store import Store

__all__ = ["LedgerFileError", "import_file", "parsed_rows"]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def parsed_rows(ledger: LedgerFile) -> Iterator[tuple[int, ParsedRow | str]]:
    """(line, parsed row) for good rows, (line, reason) for rejected ones."""
    for line, cells in ledger.rows():
        try:
            yield line, parse_row(cells)
        except RowRejected as e:
            yield line, str(e)


def import_file(store: Store, path: str | Path, encoding: str | None = None) -> dict[str, Any]:
    """Import ``path`` (CSV or XLSX) into ``store``; returns the report (see
    ``Store.import_institutions``) plus the file's ``kind`` and ``encoding``."""
    ledger = LedgerFile(path, encoding)
    try:
        report = store.import_institutions(parsed_rows(ledger), file=Path(path).name,
                                           sha256=file_sha256(ledger.path))
    except LookupError as e:  # an --encoding Python does not know
        raise LedgerFileError(f"未知编码：{e}") from None
    return {**report, "kind": ledger.kind, "encoding": ledger.encoding}
