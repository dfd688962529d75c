"""``jianfu institutions import|list|show|export|check``: the institution ledger (台账)."""

from __future__ import annotations

import argparse
import json
import sys
import unicodedata
from pathlib import Path
from typing import Any

FORMAT_HELP = "CSV (UTF-8 or GBK, detected) or XLSX"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("institutions", help="the institution ledger (台账): import, list, show, export, check",
                       description="The institution ledger: see docs/ledger.md for the columns.")
    ss = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    i = ss.add_parser("import", help=f"import a ledger file ({FORMAT_HELP}); idempotent, keyed on the credit code")
    i.add_argument("file")
    i.add_argument("--store", required=True)
    i.add_argument("--encoding", help="CSV encoding (default: detected, UTF-8 or GBK)")
    i.add_argument("--json", action="store_true", help="print the report as JSON")
    i.set_defaults(func=cmd_import)

    for name, helptext in (("list", "list institutions"), ("export", "write institutions to CSV or XLSX")):
        q = ss.add_parser(name, help=helptext)
        q.add_argument("--store", required=True)
        q.add_argument("--district")
        q.add_argument("--status", action="append", help="白名单/approved, 待审批/pending, 黑名单/blacklisted, "
                                                       "已吊销/revoked, 已注销/cancelled (repeatable)")
        q.add_argument("--type", help="学科类/subject or 非学科类/non_subject")
        q.add_argument("--with-site", action="store_true", help="only institutions with a web site")
        q.add_argument("--name", help="name contains")
        if name == "list":
            q.add_argument("--format", choices=["jsonl", "table"], default="table")
            q.add_argument("--limit", type=int)
            q.set_defaults(func=cmd_list)
        else:
            q.add_argument("--out", required=True, help="FILE.csv or FILE.xlsx")
            q.add_argument("--encoding", default="utf-8-sig", help="CSV encoding (default UTF-8 with BOM; gbk)")
            q.set_defaults(func=cmd_export)

    s = ss.add_parser("show", help="one institution: its record, change history, scans and findings")
    s.add_argument("institution", help="credit code or exact name")
    s.add_argument("--store", required=True)
    s.add_argument("--format", choices=["text", "json"], default="text")
    s.set_defaults(func=cmd_show)

    c = ss.add_parser("check", help="cross-check a scan's sites against the ledger again (default: the last scan)")
    c.add_argument("--store", required=True)
    c.add_argument("--scan", help="scan id")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_check)


def _open(path: str, must_exist: bool = True):
    from jianfu.cli import CommandError
    from store import Store, StoreError
    from store.backends import store_exists

    if must_exist and not store_exists(path):
        raise CommandError(f"{path} 不是 jianfu 数据目录（先导入台账或扫描）")
    try:
        return Store(path)
    except StoreError as e:
        raise CommandError(str(e)) from None


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    from jianfu.cli import CommandError
    from ledger.records import STATUS_OF

    statuses = []
    for raw in args.status or []:
        code = STATUS_OF.get(raw.strip())
        if code is None:
            raise CommandError(f"未知状态：{raw}（可用：白名单、待审批、黑名单、已吊销、已注销）")
        statuses.append(code)
    typ = {"学科类": "subject", "学科": "subject", "非学科类": "non_subject", "非学科": "non_subject"}.get(
        args.type or "", args.type)
    if typ not in (None, "subject", "non_subject"):
        raise CommandError(f"未知类型：{args.type}（可用：学科类、非学科类）")
    return {"district": args.district, "status": statuses or None, "type": typ, "with_site": args.with_site,
            "name": args.name}


# -- import --------------------------------------------------------------------------------------
def cmd_import(args: argparse.Namespace) -> int:
    from jianfu.cli import CommandError
    from ledger.importer import LedgerFileError, import_file

    with _open(args.store, must_exist=False) as store:
        try:
            report = import_file(store, args.file, args.encoding)
        except LedgerFileError as e:
            raise CommandError(f"{Path(args.file).name}：{e}") from None
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print_report(report)
    return 0


def print_report(r: dict[str, Any], out=sys.stdout) -> None:
    kind = "XLSX" if r["kind"] == "xlsx" else f"CSV，{ {'utf-8-sig': 'UTF-8', 'gb18030': 'GBK'}.get(r['encoding'], r['encoding'])}"
    print(f"导入 {r['file']}（{kind}）：新增 {r['added']} · 变更 {r['changed']} · 未变 {r['unchanged']} · "
          f"拒绝 {r['rejected']}", file=out)
    if r["rejections"]:
        print("被拒绝的行（其余各行已导入）：", file=out)
        for x in r["rejections"]:
            print(f"  第{x['line']}行：{x['reason']}", file=out)


# -- list / export ---------------------------------------------------------------------------------
JSONL_FIELDS = ("credit_code", "name", "licence_no", "type", "field", "status", "district", "address", "sites",
                "wechat", "mini_programs", "phones", "created_at", "updated_at")


def cmd_list(args: argparse.Namespace) -> int:
    from ledger.records import Institution

    with _open(args.store) as store:
        rows = store.institutions(**_filters(args), limit=args.limit)
        if args.format == "jsonl":
            for r in rows:
                sys.stdout.write(json.dumps({k: r[k] for k in JSONL_FIELDS}, ensure_ascii=False) + "\n")
            return 0
        cols = [("统一社会信用代码", 18), ("机构名称", 30), ("类型", 20), ("状态", 16), ("区县", 8), ("网站", 30)]
        print("  ".join(_fit(n, w) for n, w in cols))
        print("  ".join("-" * w for _, w in cols))
        n = 0
        for r in rows:
            inst = Institution.from_values(r)
            vals = [inst.credit_code, inst.name, inst.type_label, inst.status_label, inst.district or "",
                    " ".join(inst.sites)]
            print("  ".join(_fit(v, w) for v, (_, w) in zip(vals, cols, strict=True)))
            n += 1
        print(f"共 {n} 家机构")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from jianfu.cli import CommandError
    from ledger.records import export_headers, export_row

    out = Path(args.out)
    with _open(args.store) as store:
        rows = (export_row(r) for r in store.institutions(**_filters(args)))
        try:
            n = _write_xlsx(out, rows) if out.suffix.lower() == ".xlsx" else _write_csv(out, rows, args.encoding)
        except (OSError, LookupError, UnicodeEncodeError) as e:
            raise CommandError(f"无法写入 {out}：{e}") from None
    print(f"已导出 {n} 家机构到 {out}（列：{'、'.join(export_headers())}）")
    return 0


def _write_csv(path: Path, rows, encoding: str) -> int:
    import csv

    from ledger.records import export_headers

    n = 0
    with path.open("w", encoding=encoding, newline="") as f:
        w = csv.writer(f)
        w.writerow(export_headers())
        for row in rows:
            w.writerow(row)
            n += 1
    return n


def _write_xlsx(path: Path, rows) -> int:
    import openpyxl

    from ledger.records import export_headers

    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("机构名单")
    ws.append(export_headers())
    n = 0
    for row in rows:
        ws.append([v or None for v in row])
        n += 1
    wb.save(path)
    return n


# -- show ------------------------------------------------------------------------------------------
def institution_view(store, key: str) -> dict[str, Any] | list[dict[str, Any]] | None:
    """Everything about one institution (record, history, scans, findings) — or the candidates
    when a name matches several."""
    from ledger.codes import normalize_credit_code
    from ledger.records import name_key

    row = store.institution(normalize_credit_code(key))
    if row is None:
        named = store.institutions_by_key("name", [name_key(key)])
        if len(named) != 1:
            return named or None
        row = named[0]
    code = row["credit_code"]
    findings = store.institution_findings(code)
    return {"institution": row, "history": store.institution_history(code), "scans": store.institution_scans(code),
            "findings": [{k: f[k] for k in ("id", "category", "rule_id", "text", "url", "severity", "status",
                                             "last_seen_at")} for f in findings]}


def cmd_show(args: argparse.Namespace) -> int:
    from jianfu.cli import CommandError
    from ledger.records import Institution

    with _open(args.store) as store:
        view = institution_view(store, args.institution)
    if view is None:
        raise CommandError(f"台账中没有“{args.institution}”（统一社会信用代码或机构全称）")
    if isinstance(view, list):
        names = "；".join(f"{r['name']} {r['credit_code']}" for r in view)
        raise CommandError(f"“{args.institution}”对应多家机构，请用统一社会信用代码：{names}")
    if args.format == "json":
        print(json.dumps(view, ensure_ascii=False, indent=2))
        return 0
    r = view["institution"]
    inst = Institution.from_values(r)
    print(f"{inst.name}\n  统一社会信用代码  {inst.credit_code}\n  办学许可证号      {inst.licence_no or '—'}\n"
          f"  类型              {inst.type_label}\n  状态              {inst.status_label}\n"
          f"  区县              {inst.district or '—'}\n  地址              {inst.address or '—'}")
    for label, values in (("网站", inst.sites), ("微信公众号", inst.wechat), ("小程序", inst.mini_programs),
                          ("联系电话", inst.phones)):
        if values:
            print(f"  {label:<14}{'、'.join(values)}")
    print("变更记录：")
    for h in view["history"]:
        what = "新增" if h["change"] == "added" else "变更：" + "；".join(
            f"{k} {_short(v[0])} → {_short(v[1])}" for k, v in h["fields"].items())
        print(f"  {h['changed_at'][:19]}  {h.get('file') or ''}  {what}")
    print(f"扫描：{len(view['scans'])} 次" + "".join(
        f"\n  {s['started_at'][:19]}  {s['scan_id']}  {s['status']}  关联方式 {s['linked_by']}" for s in view["scans"]))
    print(f"发现问题：{len(view['findings'])} 条" + "".join(
        f"\n  {f['id'][:10]}  {f['category']:<20} {f['text'][:30]}  {f['url']}" for f in view["findings"][:50]))
    return 0


def _short(v: Any) -> str:
    s = "、".join(v) if isinstance(v, list) else ("—" if v in (None, "") else str(v))
    return s if len(s) <= 40 else s[:39] + "…"


# -- check -----------------------------------------------------------------------------------------
def cmd_check(args: argparse.Namespace) -> int:
    from jianfu.cli import CommandError
    from ledger.scan import check_scan

    with _open(args.store) as store:
        scans = store.scans()
        scan_id = args.scan or (scans[-1]["id"] if scans else None)
        if scan_id is None or store.scan(scan_id) is None:
            raise CommandError(f"没有扫描记录 {args.scan}" if args.scan else "该数据目录还没有扫描记录")
        sites = check_scan(store, scan_id)
    if sites is None:
        raise CommandError("该数据目录还没有台账（先运行 jianfu institutions import）")
    if args.json:
        print(json.dumps({"scan_id": scan_id, "sites": sites}, ensure_ascii=False, indent=2))
        return 0
    print(f"扫描 {scan_id} 与台账核对：")
    for s in sites:
        who = f"{s['name']}（{s['credit_code']}，依据 {s['linked_by']}）" if s["credit_code"] else "台账中未找到"
        print(f"  {s['site']}: {who}；核对发现 {len(s['checks'])} 条" +
              (f"：{', '.join(s['checks'])}" if s["checks"] else ""))
    return 0


def _width(s: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)


def _fit(s: str, width: int) -> str:
    out, w = "", 0
    for c in " ".join(s.split()):
        if w + _width(c) > width:
            break
        out += c
        w += _width(c)
    return out + " " * (width - w)
