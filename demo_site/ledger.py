"""Ledgers (台账) for the demo, the tests and the benchmarks, made in code (nothing big committed).

- ``demo_rows(urls)``: the demo institutions with statuses chosen so that a scan of the demo sites
  fires each ledger cross-check once: 启明星学堂 is 非学科类 yet advertises subject classes, 学霸通在线
  is revoked yet still advertising, 彩虹艺术中心's 合规声明 shows 博雅's licence number, 飞跃体育编程俱乐部
  is not in the ledger (unregistered?).
- ``generate(n)``: ``n`` realistic institutions (valid credit codes, mixed types and statuses,
  web sites, WeChat accounts, phones) with some rows broken on purpose, each broken row saying why.
- ``write_csv`` (UTF-8 or GBK) and ``write_xlsx`` (openpyxl, write-only: streamed).

``python -m demo_site.ledger --port-base 8801 --out var/demo-ledger.csv`` writes the demo ledger.
"""

from __future__ import annotations

import argparse
import csv
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ledger.codes import make_credit_code, org_code_check

HEADERS = ["序号", "机构名称", "统一社会信用代码", "办学许可证号", "类型", "状态", "区县", "地址", "网站",
           "微信公众号", "小程序", "联系电话", "法定代表人", "备注"]

# The demo institutions (demo_site/sites). Codes are fixed: the 合规声明 page of 彩虹艺术中心 prints two.
QIMING_CODE = "52110101MJ0000018G"
XUEBATONG_CODE = "91110101MA01XY7K98"
CAIHONG_CODE = "52110101MJ0000026B"
BOYA_CODE = "52110101MJ00000346"
CAIHONG_LICENCE = "教民110101770000026号"
BOYA_LICENCE = "教民110101770000034号"   # shown on 彩虹艺术中心's site: someone else's licence


def demo_rows(urls: dict[str, str]) -> list[dict[str, str]]:
    """The demo ledger; ``urls`` maps demo site (qiming, xuebatong, caihong, feiyue) → base URL."""
    rows = [
        {"机构名称": "启明星学堂", "统一社会信用代码": QIMING_CODE, "办学许可证号": "教民110101770000018号",
         "类型": "非学科类（文化艺术）", "状态": "白名单", "区县": "示范区", "地址": "书香路18号",
         "网站": urls.get("qiming", ""), "微信公众号": "qiming-demo", "联系电话": "010-00000001"},
        {"机构名称": "学霸通在线", "统一社会信用代码": XUEBATONG_CODE, "办学许可证号": "教民110101170000007号",
         "类型": "学科类", "状态": "已吊销", "区县": "示范区", "地址": "学府路1号", "网站": urls.get("xuebatong", ""),
         "备注": "2026年9月吊销办学许可证"},
        {"机构名称": "彩虹艺术中心", "统一社会信用代码": CAIHONG_CODE, "办学许可证号": CAIHONG_LICENCE,
         "类型": "非学科类（文化艺术）", "状态": "白名单", "区县": "示范区", "地址": "彩虹街3号",
         "网站": urls.get("caihong", "")},
        {"机构名称": "博雅学科培训学校", "统一社会信用代码": BOYA_CODE, "办学许可证号": BOYA_LICENCE,
         "类型": "学科类", "状态": "白名单", "区县": "示范区", "地址": "博雅路5号"},
        {"机构名称": "明日之星科技培训中心", "统一社会信用代码": "52110101MJ00000421", "类型": "非学科类（科技）",
         "状态": "待审批", "区县": "示范区", "地址": "创新大道9号"},
        {"机构名称": "金榜题名教育咨询有限公司", "统一社会信用代码": "52110101MJ0000069Q", "类型": "学科类",
         "状态": "黑名单", "区县": "示范区", "备注": "无证开展学科类培训，已列入黑名单"},
    ]
    return [{"序号": str(i + 1), **r} for i, r in enumerate(rows)]


# -- a generated ledger ---------------------------------------------------------------------------
DISTRICTS = {"东城区": "110101", "西城区": "110102", "朝阳区": "110105", "丰台区": "110106", "石景山区": "110107",
             "海淀区": "110108", "门头沟区": "110109", "房山区": "110111", "通州区": "110112", "顺义区": "110113",
             "昌平区": "110114", "大兴区": "110115", "怀柔区": "110116", "平谷区": "110117", "密云区": "110118",
             "延庆区": "110119"}
BRANDS = ["启航", "博学", "育才", "星火", "乐思", "智慧树", "小天才", "青苗", "明德", "致远", "睿思", "晨曦", "向阳",
          "知行", "远航", "思源", "彩虹", "童梦", "飞扬", "卓越", "德馨", "墨香", "未来", "金色", "蓝天", "白鹭"]
KINDS = {  # type cell → name words
    "学科类": ["教育", "学科", "课堂", "书院"],
    "非学科类（体育）": ["篮球", "游泳", "体育", "跆拳道", "足球", "轮滑"],
    "非学科类（文化艺术）": ["美术", "舞蹈", "音乐", "书法", "钢琴", "艺术"],
    "非学科类（科技）": ["编程", "机器人", "科技", "创客"],
}
SUFFIXES = ["培训学校", "培训中心", "培训学校有限公司", "教育科技有限公司", "俱乐部"]
STATUS_CELLS = [("白名单", 60), ("已审批", 10), ("待审批", 10), ("黑名单", 5), ("已吊销", 7), ("已注销", 8)]
STREETS = ["学院路", "中关村大街", "朝阳北路", "建国路", "长安街", "科学城路", "文化路", "育英路", "体育场路"]
BROKEN = ("bad_check_digit", "missing_name", "unknown_type", "unknown_status", "bad_site", "duplicate_code")


@dataclass
class GeneratedRow:
    cells: dict[str, str]
    broken: str | None = None          # one of BROKEN when the row is wrong on purpose


def generate(n: int, seed: int = 16, broken_every: int = 50) -> Iterator[GeneratedRow]:
    """``n`` institutions; every ``broken_every``-th row (0: none) is broken, cycling through BROKEN."""
    rnd = random.Random(seed)
    statuses, weights = zip(*STATUS_CELLS, strict=True)
    districts = list(DISTRICTS)
    first_code = ""
    for i in range(n):
        district = districts[i % len(districts)]
        area = DISTRICTS[district]
        kind = rnd.choices(list(KINDS), weights=(30, 25, 30, 15))[0]
        body = f"MA{i:06X}"
        code = make_credit_code(*(("5", "2") if i % 3 else ("9", "1")), area, body + org_code_check(body))
        first_code = first_code or code
        name = f"北京市{district}{rnd.choice(BRANDS)}{rnd.choice(KINDS[kind])}{rnd.choice(SUFFIXES)}"
        cells = {
            "序号": str(i + 1), "机构名称": name, "统一社会信用代码": code,
            "办学许可证号": f"教民{area}{1 if kind == '学科类' else 7}{i:08d}号" if rnd.random() < 0.85 else "",
            "类型": kind, "状态": rnd.choices(statuses, weights=weights)[0], "区县": district,
            "地址": f"北京市{district}{rnd.choice(STREETS)}{rnd.randint(1, 300)}号",
            "网站": f"https://www.jg{i:06d}.cn/" if rnd.random() < 0.4 else "",
            "微信公众号": f"jg{i:06d}" if rnd.random() < 0.3 else "",
            "小程序": f"{name[:4]}课堂" if rnd.random() < 0.1 else "",
            "联系电话": f"010-6{rnd.randint(0, 9999999):07d}", "法定代表人": rnd.choice("王李张刘陈杨赵黄周吴") + "某",
            "备注": "",
        }
        broken = None
        if broken_every and i % broken_every == broken_every - 1:
            broken = BROKEN[(i // broken_every) % len(BROKEN)]
            if broken == "bad_check_digit":
                last = code[-1]
                cells["统一社会信用代码"] = code[:-1] + ("0" if last != "0" else "1")
            elif broken == "missing_name":
                cells["机构名称"] = ""
            elif broken == "unknown_type":
                cells["类型"] = "其它类别"
            elif broken == "unknown_status":
                cells["状态"] = "暂停营业"
            elif broken == "bad_site":
                cells["网站"] = "http://"
            elif broken == "duplicate_code":
                cells["统一社会信用代码"] = first_code
        yield GeneratedRow(cells, broken)


def write_csv(path: str | Path, rows: Iterable[dict[str, str]], encoding: str = "utf-8",
              headers: list[str] = HEADERS, title: str | None = None) -> Path:
    """A CSV as a spreadsheet program saves it (``encoding`` gbk or utf-8; with ``title``, a
    title line above the header, as platform exports have)."""
    path = Path(path)
    with path.open("w", encoding=encoding, newline="") as f:
        w = csv.writer(f)
        if title:
            w.writerow([title])
        w.writerow(headers)
        for r in rows:
            w.writerow([r.get(h, "") for h in headers])
    return path


def write_xlsx(path: str | Path, rows: Iterable[dict[str, str]], headers: list[str] = HEADERS,
               title: str | None = None) -> Path:
    import openpyxl

    path = Path(path)
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("机构名单")
    if title:
        ws.append([title])
    ws.append(headers)
    for r in rows:
        ws.append([r.get(h, "") or None for h in headers])
    wb.save(path)
    return path


def main() -> None:
    from demo_site.server import INSTITUTIONS

    parser = argparse.ArgumentParser(description="write the demo ledger (台账) for the demo sites")
    parser.add_argument("--port-base", type=int, default=8801)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    urls = {name: f"http://127.0.0.1:{args.port_base + i}/" for i, name in enumerate(INSTITUTIONS)}
    write_csv(args.out, demo_rows(urls))


if __name__ == "__main__":
    main()
