"""``jianfu check FILE|URL…`` (check now) and ``jianfu tips add|list|show|update`` (举报)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from store.intake import TIP_CHANNELS, TIP_OUTCOMES

CHANNEL_ZH = {"phone": "电话", "mail": "信件/邮件", "online_form": "网上举报", "forwarded": "其他部门转办",
              "visit": "来访", "other": "其他"}
OUTCOME_ZH = {"open": "待处理", "case_opened": "已立案（关联案件）", "no_violation": "查无违规", "referred": "已移交",
              "closed": "已办结"}
STATUS_ZH = {"checked": "已检查", "refused": "拒收", "failed": "失败"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="check images, photos, PDFs, saved pages or links now",
                       description="Each FILE (PNG/JPEG/WebP/HEIC image or photo, PDF, HTML, MHTML) or URL is "
                                   "checked now, kept as evidence and its findings printed.")
    p.add_argument("items", nargs="+", metavar="FILE|URL")
    p.add_argument("--store", required=True, help="store directory (created if missing)")
    p.add_argument("--institution", help="the institution the material is about")
    p.add_argument("--district", help="district recorded on its findings")
    p.add_argument("--source", help="who sent it in (e.g. 家长来电 / 市局转办)")
    p.add_argument("--tip", help="the tip (举报) it belongs to")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=run_check)

    t = sub.add_parser("tips", help="tips (举报): record, list, show")
    tsub = t.add_subparsers(dest="tips_command", required=True, metavar="ACTION")
    a = tsub.add_parser("add", help="record a tip; its links and files are checked now")
    a.add_argument("--store", required=True)
    a.add_argument("--channel", required=True, choices=TIP_CHANNELS,
                   help="; ".join(f"{k}={v}" for k, v in CHANNEL_ZH.items()))
    a.add_argument("--received-at", help="when it came in (ISO-8601; default now)")
    a.add_argument("--forwarded-by", help="the office that forwarded it")
    a.add_argument("--contact", help="the tipster's contact, only as far as they gave it")
    a.add_argument("--institution")
    a.add_argument("--district")
    a.add_argument("--text", default="", help="what was reported")
    a.add_argument("--url", action="append", default=[], help="a reported link (repeatable)")
    a.add_argument("--file", action="append", default=[], help="a file sent with it (repeatable)")
    a.add_argument("--recorded-by", help="who recorded it")
    a.add_argument("--no-check", action="store_true", help="record only; check the links and files later")
    a.add_argument("--format", choices=["text", "json"], default="text")
    a.set_defaults(func=run_tips_add)
    ls = tsub.add_parser("list", help="tips, newest first")
    ls.add_argument("--store", required=True)
    ls.add_argument("--outcome", choices=TIP_OUTCOMES)
    ls.add_argument("--format", choices=["text", "json"], default="text")
    ls.set_defaults(func=run_tips_list)
    sh = tsub.add_parser("show", help="one tip: what was reported, its submissions and cases")
    sh.add_argument("tip")
    sh.add_argument("--store", required=True)
    sh.add_argument("--format", choices=["text", "json"], default="text")
    sh.set_defaults(func=run_tips_show)
    up = tsub.add_parser("update", help="set a tip's outcome, link it to cases")
    up.add_argument("tip")
    up.add_argument("--store", required=True)
    up.add_argument("--outcome", choices=TIP_OUTCOMES)
    up.add_argument("--note")
    up.add_argument("--case", action="append", default=[], help="a case it led to (repeatable)")
    up.set_defaults(func=run_tips_update)


def _error(message: str) -> Exception:
    from jianfu.cli import CommandError

    return CommandError(message)


def _open(store_dir: str, read_only: bool = False) -> Any:
    from store import Store

    return Store(store_dir, read_only=read_only)


def check_items(store_dir: str, items: list[str], *, institution: str | None, district: str | None,
                source: str | None, tip_id: str | None) -> list[Any]:
    """Files first (in this process), then links (one rendered scan). Unreadable paths are an error
    before anything is stored."""
    from intake.check import Checker, check_urls

    urls = [i for i in items if "://" in i]
    files = [Path(i) for i in items if "://" not in i]
    for f in files:
        if not f.is_file():
            raise _error(f"找不到文件 {f}")
    results = []
    if files:
        with _open(store_dir) as store, Checker(store, institution=institution, district=district, source=source,
                                                tip_id=tip_id) as checker:
            for f in files:
                results.append(checker.check_file(f.read_bytes(), f.name, beside=f.parent))
    if urls:
        results += check_urls(store_dir, urls, institution=institution, district=district, source=source,
                              tip_id=tip_id)
    return results


def print_results(results: list[Any], out=sys.stdout) -> None:
    from webapp.labels import CATEGORY_NAMES, SEVERITY_NAMES

    for r in results:
        from intake.uploads import KIND_ZH

        head = f"{STATUS_ZH.get(r.status, r.status)} {r.name}（{KIND_ZH.get(r.kind, '文件')}"
        head += f"，SHA-256 {r.sha256[:12]}…）" if r.sha256 else "）"
        if r.status != "checked":
            print(f"{head}：{r.reason}", file=out)
            continue
        print(f"{head}：{len(r.findings)} 条问题线索" + (f"，{len(r.cases)} 个案件" if r.cases else ""), file=out)
        photo = r.details.get("photo") or {}
        if photo.get("straightened"):
            print("  照片已做透视校正后识别", file=out)
        for f in r.findings:
            where = "图片文字" if f["source"] == "image" else "文字"
            page = f["url"].rsplit("/", 1)[-1]
            if page.startswith("p") and page[1:].isdigit():
                where = f"第{page[1:]}页{where}"
            print(f"  [{SEVERITY_NAMES.get(f['severity'], f['severity'])}] "
                  f"{CATEGORY_NAMES.get(f['category'], f['category'])}：“{f['text']}”（{where}，案件 {f['case_id']}）",
                  file=out)


def run_check(args: argparse.Namespace) -> int:
    if args.tip:
        with _open(args.store) as store:
            if store.tip(args.tip) is None:
                raise _error(f"没有编号为 {args.tip} 的举报")
    results = check_items(args.store, args.items, institution=args.institution, district=args.district,
                          source=args.source, tip_id=args.tip)
    if args.format == "json":
        for r in results:
            print(json.dumps(r.to_dict(), ensure_ascii=False, default=str))
    else:
        print_results(results)
    return 0 if all(r.status == "checked" for r in results) else 1


def run_tips_add(args: argparse.Namespace) -> int:
    for f in args.file:
        if not Path(f).is_file():
            raise _error(f"找不到文件 {f}")
    with _open(args.store) as store:
        tip_id = store.add_tip(channel=args.channel, text=args.text, urls=args.url, received_at=args.received_at,
                               forwarded_by=args.forwarded_by, contact=args.contact, institution=args.institution,
                               district=args.district, recorded_by=args.recorded_by)
    results = []
    if not args.no_check and (args.url or args.file):
        results = check_items(args.store, [*args.file, *args.url], institution=args.institution,
                              district=args.district, source=f"举报 {tip_id}", tip_id=tip_id)
    if args.format == "json":
        print(json.dumps({"tip": tip_id, "checked": [r.to_dict() for r in results]}, ensure_ascii=False, default=str))
    else:
        print(f"已登记举报 {tip_id}")
        print_results(results)
    return 0


def run_tips_list(args: argparse.Namespace) -> int:
    with _open(args.store, read_only=True) as store:
        tips = store.tips(outcome=args.outcome)
    if args.format == "json":
        for t in tips:
            print(json.dumps(t, ensure_ascii=False))
        return 0
    if not tips:
        print("没有举报记录")
    for t in tips:
        print(f"{t['id']}  {t['received_at'][:16]}  {CHANNEL_ZH.get(t['channel'], t['channel'])}  "
              f"{t['institution'] or '（未填机构）'}  {OUTCOME_ZH.get(t['outcome'], t['outcome'])}  "
              f"案件 {t['cases']}  {' '.join(t['text'].split())[:40]}")
    return 0


def tip_record(store: Any, tip_id: str) -> dict[str, Any]:
    tip = store.tip(tip_id)
    if tip is None:
        raise _error(f"没有编号为 {tip_id} 的举报")
    return {"tip": tip, "submissions": store.submissions(tip_id=tip_id), "cases": store.tip_cases(tip_id)}


def run_tips_show(args: argparse.Namespace) -> int:
    with _open(args.store, read_only=True) as store:
        record = tip_record(store, args.tip)
    if args.format == "json":
        print(json.dumps(record, ensure_ascii=False))
        return 0
    t = record["tip"]
    print(f"举报 {t['id']}（{OUTCOME_ZH.get(t['outcome'], t['outcome'])}）")
    print(f"  收到：{t['received_at']}  渠道：{CHANNEL_ZH.get(t['channel'], t['channel'])}"
          + (f"（{t['forwarded_by']} 转办）" if t["forwarded_by"] else ""))
    print(f"  举报人联系方式：{t['contact'] or '（未留）'}")
    print(f"  机构：{t['institution'] or '（未填）'}  区：{t['district'] or '（未填）'}")
    print(f"  内容：{t['text'] or '（无）'}")
    for u in t["urls"]:
        print(f"  链接：{u}")
    for s in record["submissions"]:
        print(f"  材料：{s['name'] or s['url']}  {STATUS_ZH.get(s['status'], s['status'])}  "
              + (f"{s['findings']} 条问题线索" if s["status"] == "checked" else (s["reason"] or "")))
    for c in record["cases"]:
        print(f"  案件：{c['id']}  {c['institution'] or c['institution_key']}  {','.join(c['categories'])}  {c['status']}")
    if t["outcome_note"]:
        print(f"  处理结果说明：{t['outcome_note']}")
    return 0


def run_tips_update(args: argparse.Namespace) -> int:
    with _open(args.store) as store:
        if store.tip(args.tip) is None:
            raise _error(f"没有编号为 {args.tip} 的举报")
        if args.case:
            missing = [c for c in args.case if store.case(c) is None]
            if missing:
                raise _error(f"没有编号为 {'、'.join(missing)} 的案件")
            store.link_tip_cases(args.tip, args.case, by=args.note and "update" or "jianfu tips update")
        if args.outcome:
            store.set_tip_outcome(args.tip, args.outcome, args.note)
    print(f"已更新举报 {args.tip}")
    return 0
