"""Stream the rows of a ledger file (CSV in UTF-8 or GBK/GB18030, or XLSX) with their line numbers.

Nothing is read whole: CSV goes through ``csv.reader`` on a text stream, XLSX through openpyxl's
read-only (streaming) mode. The header is the first row, among the first ten, that names the
required columns (platform exports often start with a title line).
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ledger.records import map_headers, missing_required

HEADER_SEARCH_ROWS = 10
SNIFF_BYTES = 1 << 20


class LedgerFileError(ValueError):
    """The file as a whole cannot be imported (unreadable, no header, wrong encoding); Chinese."""


def detect_encoding(path: Path) -> str:
    """``utf-8-sig`` when the start of the file is UTF-8 (BOM or not), else ``gb18030`` (a superset
    of GBK and GB2312, which Chinese spreadsheet programs write)."""
    with path.open("rb") as f:
        head = f.read(SNIFF_BYTES)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return "utf-8-sig"
    except UnicodeDecodeError:
        pass
    try:
        codecs.getincrementaldecoder("gb18030")().decode(head, final=False)
        return "gb18030"
    except UnicodeDecodeError:
        raise LedgerFileError("文件既不是UTF-8编码也不是GBK编码，无法读取") from None


def file_kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return "xlsx"
    if suffix in (".csv", ".txt", ".tsv"):
        return "csv"
    if suffix == ".xls":
        raise LedgerFileError("不支持旧版 .xls 文件，请在表格软件中另存为 .xlsx 或 .csv")
    with path.open("rb") as f:
        return "xlsx" if f.read(4) == b"PK\x03\x04" else "csv"


class LedgerFile:
    """``rows()`` yields (line number in the file, {field: cell}) after the header row.
    ``fields`` is the set of fields the header names; ``encoding`` is what CSV was read as."""

    def __init__(self, path: str | Path, encoding: str | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise LedgerFileError(f"找不到文件：{self.path}")
        self.kind = file_kind(self.path)
        self.encoding = (encoding or detect_encoding(self.path)) if self.kind == "csv" else None
        self.fields: set[str] = set()

    def rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        raw = self._csv_rows() if self.kind == "csv" else self._xlsx_rows()
        columns: dict[int, str] | None = None
        best: tuple[int, list[str]] = (-1, [])
        for line, cells in raw:
            if columns is None:
                mapped = map_headers(cells)
                missing = missing_required(set(mapped.values()))
                if not missing:
                    columns = mapped
                    self.fields = set(mapped.values())
                    continue
                if len(mapped) > best[0]:
                    best = (len(mapped), missing)
                if line >= HEADER_SEARCH_ROWS:
                    break
                continue
            if not any(c not in (None, "") for c in cells):
                continue  # a blank line
            yield line, {f: cells[i] if i < len(cells) else None for i, f in columns.items()}
        if columns is None:
            missing = best[1] or missing_required(set())
            raise LedgerFileError(f"找不到表头：前{HEADER_SEARCH_ROWS}行中没有包含必需列的一行（缺少："
                                  f"{'、'.join(missing)}）")

    def _csv_rows(self) -> Iterator[tuple[int, list[Any]]]:
        assert self.encoding
        start = 1  # the line the next row starts on
        try:
            with self.path.open("r", encoding=self.encoding, newline="") as f:
                first = f.readline()
                f.seek(0)
                delimiter = "\t" if first.count("\t") > first.count(",") else ","
                reader = csv.reader(f, delimiter=delimiter)
                for row in reader:
                    yield start, row
                    start = reader.line_num + 1
        except UnicodeDecodeError as e:
            raise LedgerFileError(f"第{start}行附近的内容不是{_enc_name(self.encoding)}编码，无法读取"
                                  f"（{e.reason}）；整个文件未导入") from None
        except csv.Error as e:
            raise LedgerFileError(f"CSV格式错误：{e}；整个文件未导入") from None

    def _xlsx_rows(self) -> Iterator[tuple[int, list[Any]]]:
        from zipfile import BadZipFile

        import openpyxl

        try:
            wb = openpyxl.load_workbook(self.path, read_only=True, data_only=True)
        except (BadZipFile, OSError, KeyError, ValueError) as e:
            raise LedgerFileError(f"无法打开XLSX文件：{e}") from None
        try:
            ws = wb.worksheets[0]
            for row in ws.iter_rows():
                cells = [c.value for c in row]
                number = next((c.row for c in row if getattr(c, "row", None)), None)
                if number is None:
                    continue  # an empty row (read-only mode gives no row number for it)
                yield number, cells
        finally:
            wb.close()


def _enc_name(encoding: str) -> str:
    return {"utf-8-sig": "UTF-8", "gb18030": "GBK"}.get(encoding, encoding)
