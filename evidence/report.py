"""The Chinese, printable report: ``report.html`` (one section per case — one institution × one
ad: the ad image or page screenshot with every violation boxed and numbered, then the violations
with their clause) and ``report.pdf`` printed from it by headless Chromium (the Debian package; no
network, temporary profile).

Only Chinese reaches the page: category names, the rules' Chinese titles (``detectors/rules``),
the legal basis; the detectors' English trace stays in findings.json. Images are referenced by
their paths inside the packet, so the HTML works when the packet is unzipped; the PDF embeds them.
"""

from __future__ import annotations

import functools
import html
import os
import re
import shutil
import signal
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

CATEGORY_ZH = {
    "preschool_subject": "面向学龄前儿童开展学科类培训",
    "photo_search": "拍照搜题等惰化学生思维的功能",
    "competition_ranking": "竞赛、考级、排名宣传",
    "advance_teaching": "超标超前培训",
    "off_hours_schedule": "占用节假日、休息日、寒暑假或超出规定时段组织学科类培训",
    "prepaid_fees": "违规预收费（超期限、超课时、超金额或未进监管账户）",
    "teacher_qualification": "培训人员资质问题",
    "guarantee_promise": "对培训效果作出保证性承诺",
    "false_claim": "虚假宣传",
    "unlicensed_subject": "未经审批开展学科类培训",
}
SEVERITY_ZH = {"high": "高", "medium": "中", "low": "低"}
STATUS_ZH = {"open": "待复核", "confirmed": "已确认", "dismissed": "已排除"}
SOURCE_ZH = {"text": "网页文字", "image": "图片广告（OCR 识别）"}
CHROMIUM = os.environ.get("JIANFU_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-extensions", "--disable-default-apps", "--mute-audio", "--no-pdf-header-footer"]


class PdfError(RuntimeError):
    pass


SEVERITY_RANK = {"high": 3, "medium": 2, "low": 1}
CHINA = timezone(timedelta(hours=8))
STEP_ZH = {
    "scan.start": "扫描开始", "scan.finish": "扫描结束", "capture": "抓取存档", "recheck": "条件复查",
    "ocr": "图片文字识别", "detect": "发现问题线索", "export.start": "导出开始", "export.key": "生成签名密钥",
    "export.skip": "跳过", "export.warc": "复制存档记录", "export.wacz": "生成网页存档包",
    "export.findings": "写入线索明细", "export.report": "生成报告", "export.pdf": "打印 PDF",
    "export.seal": "签名封存",
}


@functools.cache
def _rule_titles() -> dict[str, str]:
    """rule id → the rule's Chinese title, from the rule packs (no detector is built)."""
    from detectors.engine import RULES_DIR, load_rules

    titles: dict[str, str] = {}
    for path in sorted(RULES_DIR.glob("*.yaml")):
        if path.name.startswith("_"):
            continue
        try:
            titles.update({r.id: r.title for r in load_rules(path)})
        except Exception:  # a broken pack must not stop an export; the category name stands in
            continue
    return titles


def rule_title_zh(rule_id: str, finding: dict[str, Any] | None = None) -> str:
    """What the rule forbids, in Chinese: the finding's own Chinese explanation or title when the
    detectors give one, else the rule pack's title, else the category name."""
    f = finding or {}
    for key in ("explanation_zh", "title_zh", "rule_title"):
        v = f.get(key)
        if isinstance(v, list | tuple):
            v = "；".join(str(x) for x in v if x)
        if v:
            return str(v)
    return _rule_titles().get(rule_id) or CATEGORY_ZH.get(f.get("category", ""), "")


_QUOTED = re.compile(r"“[^”]*”|「[^」]*」|（规则[^）]*）|\(rule[^)]*\)")
_LATIN_WORD = re.compile(r"[A-Za-z]{3,}")


def explanation_zh(lines: list[str] | tuple[str, ...] | None) -> list[str]:
    """The steps of a finding's explanation that are Chinese (the detectors write them in Chinese;
    an English step — older rule packs — is left to findings.json), without the rule's title and
    the basis, which the report shows on their own."""
    out = []
    for line in lines or []:
        text = str(line).strip()
        if not text or text.startswith(("违反", "breaks ")) or "（规则 " in text or "阈值" in text:
            continue   # the title and the basis are shown on their own; "score ≥ threshold" says nothing
        if _LATIN_WORD.search(_QUOTED.sub("", text)) or not re.search(r"[\u4e00-\u9fff]", text):
            continue
        out.append(text)
    return out


def e(v: Any) -> str:
    return html.escape("" if v is None else str(v))


def china(utc: str | None) -> str:
    """'2026-11-30T14:27:46.568Z' → '2026-11-30 22:27'（北京时间）."""
    if not utc:
        return ""
    try:
        t = datetime.fromisoformat(utc.replace("Z", "+00:00"))
    except ValueError:
        return utc
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(CHINA).strftime("%Y-%m-%d %H:%M")


def marked_context(f: dict[str, Any]) -> str:
    """The context with the matched words marked; line breaks shown as “ / ” to keep it short."""
    ctx, text = f.get("context") or "", f.get("text") or ""
    off = min(f.get("start", 0), 40)
    if ctx[off:off + len(text)] != text:
        off = ctx.find(text)
    if off < 0 or not text:
        return _lines(ctx)
    return _lines(ctx[:off]) + "<mark>" + e(text) + "</mark>" + _lines(ctx[off + len(text):])


def _lines(s: str) -> str:
    return " / ".join(e(" ".join(line.split())) for line in s.split("\n"))


def _row(label: str, value: str) -> str:
    return f"<tr><th>{e(label)}</th><td>{value}</td></tr>"


def _figure(path: str, caption: str) -> str:
    return f'<figure><img src="{e(path)}" alt="{e(caption)}"><figcaption>{e(caption)}</figcaption></figure>'


def ledger_text(rec: dict[str, Any]) -> str:
    """The institution's ledger (台账) record as the scan found it (ledger.records.Institution.snapshot)."""
    return e(f"{rec['name']}，统一社会信用代码 {rec['credit_code']}，办学许可证号 {rec.get('licence_no') or '无'}，"
             f"{rec['type_label']}，{rec['status_label']}" + (f"，{rec['district']}" if rec.get("district") else ""))


def _ad(c: dict[str, Any]) -> str:
    """The ad in a few words: 图片广告 name · 3 个页面, or 网页文字 title."""
    if c["source"] == "image":
        name = (c.get("image_url") or "").rsplit("/", 1)[-1].split("?")[0]
        more = f"（{len(c['pages'])} 个页面）" if len(c["pages"]) > 1 else ""
        return f"图片广告 <code class=url>{e(name)}</code>{more}"
    return f"网页文字：{e(c.get('title') or '')}"


def _institution(c: dict[str, Any]) -> str:
    return e(c.get("institution") or "（未命名机构）") + (f"（{e(c['district'])}）" if c.get("district") else "")


def case_section(c: dict[str, Any]) -> str:
    n = c["no"]
    pages = "".join(
        f"<li>{e(p.get('title') or '')} <code class=url>{e(p['url'])}</code><br><small>抓取于 "
        f"{e(china(p['captured_at'].get('utc')))}（北京时间），服务器 IP {e(p.get('server_ip') or '未记录')}，存档记录 "
        f"<code>{e(p.get('record_id'))}</code></small></li>" for p in c["pages"])
    rows = [
        _row("案件编号", f"<code>{e(c['id'])}</code>"),
        _row("机构", _institution(c)),
        *([_row("台账记录", ledger_text(c["ledger"]))] if c.get("ledger") else []),
        _row("广告", ("图片广告（文字经 OCR 识别）" if c["source"] == "image" else "网页文字")
             + f"，出现在 {len(c['pages'])} 个页面：<ul class=pages>{pages}</ul>"),
    ]
    if c.get("image"):
        img = c["image"]
        cap = (img.get("captured_at") or {}).get("utc")
        rows.append(_row("图片", f"<code class=url>{e(img['url'])}</code><br><small>SHA-256 {e(img.get('sha256'))}；"
                                f"抓取于 {e(china(cap))}（北京时间），存档记录 <code>{e(img.get('record_id'))}</code>"
                                f"</small>"))
    if c.get("elsewhere"):
        rows.append(_row("其他网站", "同一广告图片（或经缩放、转码的同一图片）也出现在：<ul class=pages>" + "".join(
            f"<li>{e(o.get('institution') or o['site'])} <code class=url>{e(o['page_url'])}</code>"
            f"<small>（{'同一文件' if o['distance'] == 0 else '相似度差异 ' + str(o['distance']) + '/64'}）</small></li>"
            for o in c["elsewhere"][:10]) + "</ul>"))
    rows += [
        _row("发现时间", f"首次 {e(china(c['first_seen_at']))}，末次 {e(china(c['last_seen_at']))}（北京时间）"),
        _row("复核状态", e(STATUS_ZH.get(c["status"], c["status"]))),
    ]
    figs = []
    for k, path in enumerate(c["files"].get("figures") or [], 1):
        part = f"（{k}/{len(c['files']['figures'])}）" if len(c["files"]["figures"]) > 1 else ""
        what = "广告图片" if c["source"] == "image" else "页面截图"
        figs.append(_figure(path, f"图 {n}{part}：{what}，红框标出违规文字，编号对应下表序号"))
    if c.get("figure_note"):
        figs.append(f"<p class=note>{e(c['figure_note'])}。</p>")
    viol = "".join(
        f"<tr class=v><td class=no>{v['no']}</td>"
        f"<td><span class=hit>{e(v['text'])}</span><div class=ctx>{marked_context(v)}</div></td>"
        f"<td>{e(v['category_zh'])}{'（疑似，需人工核实）' if v.get('tier') == 'suspected' else ''}"
        f"<br><small>{e(v['rule_title'])}；严重程度"
        f"{e(SEVERITY_ZH.get(v['severity'], v['severity']))}</small></td>"
        f"<td class=basis>{e(v['basis'])}</td></tr>"
        + (f"<tr class=why><td></td><td colspan=3>判定说明：{e('；'.join(v['explanation_zh']))}</td></tr>"
           if v.get("explanation_zh") else "")
        for v in c["violations"])
    return (f'<section class=case id="c-{e(c["id"])}"><h2>案件 {n}：{e(c.get("institution") or "（未命名机构）")}'
            f' · {"图片广告" if c["source"] == "image" else "网页文字"}</h2>'
            f"<table class=kv>{''.join(rows)}</table>{''.join(figs)}"
            f"<h3>违规内容（{len(c['violations'])} 项）</h3>"
            f"<table class=viol><colgroup><col class=no><col class=w1><col class=w2><col class=w3></colgroup>"
            f"<tr><th>序号</th><th>违规文字及上下文</th><th>问题类别</th><th>违反的规定</th></tr>{viol}</table>"
            f"<p class=ids>问题线索编号（见 findings.json）：{e('、'.join(x[:12] for x in c['finding_ids']))}</p>"
            "</section>")


def _fits(name: str | None) -> str:
    """A short name stays on one line; a long one wraps, but never to a sliver of a column."""
    return "t" if len(name or "") <= 10 else "long"


def _actor(actor: str) -> str:
    return actor.replace("jianfu crawler (scan ", "jianfu 抓取程序（扫描 ").replace(")", "）") \
        if actor.startswith("jianfu crawler") else actor


def custody_rows(custody: list[dict[str, Any]], cases: list[dict[str, Any]]) -> str:
    """The custody log for print: one line per step, the detections summed up per case (every
    single one is in custody.json)."""
    case_of = {fid: c for c in cases for fid in c["finding_ids"]}
    out, counted = [], set()
    for ev in custody:
        detail, actor = ev["detail"], ev["actor"]
        if ev["step"] == "detect":
            c = case_of.get(ev.get("finding_id"))
            if c is not None:
                if c["id"] in counted:
                    continue
                counted.add(c["id"])
                detail = (f"发现案件 {c['no']}（{c.get('institution') or '未命名机构'}）的问题线索 "
                          f"{len(c['finding_ids'])} 条，违规内容 {len(c['violations'])} 项")
                actor = "jianfu detectors"
        out.append(f"<tr><td class=t>{e(china(ev.get('time_utc')))}</td><td class=t>"
                   f"{e(STEP_ZH.get(ev['step'], ev['step']))}</td><td>{e(_actor(actor))}</td>"
                   f"<td>{e(detail)}</td></tr>")
    return "".join(out)


def render_html(cases: list[dict[str, Any]], findings: list[dict[str, Any]], meta: dict[str, Any],
                custody: list[dict[str, Any]]) -> str:
    summary = "".join(
        f"<tr><td class=no>{c['no']}</td><td class={_fits(c.get('institution'))}>"
        f"{e(c.get('institution') or '（未命名）')}</td>"
        f"<td class=ad>{_ad(c)}</td><td>{'、'.join(e(CATEGORY_ZH.get(x, x)) for x in c['categories'])}</td>"
        f"<td class=no>{len(c['violations'])}</td><td class=t>{e(china(c['last_seen_at'])[:10])}</td>"
        f"<td class=t>{e(STATUS_ZH.get(c['status'], c['status']))}</td></tr>" for c in cases)
    tsa = (f"已向可信时间戳服务 <code>{e(meta['tsa_url'])}</code> 申请 RFC 3161 时间戳，令牌见 manifest.tsr。"
           if meta.get("tsa_url") else
           "<b>未配置可信时间戳服务（RFC 3161）</b>：本证据包的导出时间仅以导出计算机的时钟为准，"
           "未经第三方时间戳机构证明。")
    warn = "".join(f"<li>{e(w)}</li>" for w in meta.get("warnings") or [])
    n_viol = sum(len(c["violations"]) for c in cases)
    return f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>校外培训违规线索证据报告</title>
<style>
@page {{ size: A4; margin: 16mm 14mm; }}
body {{ font-family: "Noto Sans CJK SC", "Noto Serif CJK SC", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei",
       "AR PL UKai CN", sans-serif; font-size: 10.5pt; line-height: 1.5; color: #111; margin: 0 auto;
       max-width: 190mm; }}
h1 {{ font-size: 20pt; text-align: center; margin: 8mm 0 2mm; }}
h2 {{ font-size: 14pt; border-bottom: 2px solid #c00; padding-bottom: 2px; }}
h3 {{ font-size: 11.5pt; margin: 4mm 0 1mm; }}
table {{ border-collapse: collapse; width: 100%; margin: 3mm 0; }}
th, td {{ border: 1px solid #999; padding: 3px 5px; vertical-align: top; text-align: left; }}
th {{ background: #f3f3f3; white-space: nowrap; }}
table.kv th {{ width: 20mm; }}
td.no {{ white-space: nowrap; text-align: center; }}
td.t {{ white-space: nowrap; }}
td.long {{ min-width: 8em; }}
td.ad {{ min-width: 10em; }}
table.viol col.no {{ width: 9mm; }} table.viol col.w1 {{ width: 34%; }} table.viol col.w2 {{ width: 24%; }}
td.basis {{ font-size: 9pt; }}
tr.v td {{ border-bottom: none; }}
tr.why td {{ border-top: none; font-size: 8.5pt; color: #444; padding-top: 0; }}
tr.v:has(+ tr.why) {{ break-after: avoid; }}
code {{ font-family: "DejaVu Sans Mono", monospace; font-size: 8.5pt; word-break: break-all; }}
.url {{ word-break: break-all; }}
mark, .hit {{ background: #ffe0e0; color: #b00000; font-weight: bold; }}
.ctx {{ font-size: 9pt; color: #333; margin-top: 1mm; }}
table.custody {{ font-size: 8.5pt; }} table.custody col.a {{ width: 24%; }} table.custody col.d {{ width: 50%; }}
ul.pages {{ margin: 1mm 0 0; padding-left: 5mm; }}
section.case {{ break-before: page; }}
tr {{ break-inside: avoid; }}
figure {{ margin: 3mm 0; break-inside: avoid; text-align: center; }}
figure img {{ max-width: 100%; max-height: 120mm; border: 1px solid #ccc; }}
figcaption {{ font-size: 9pt; color: #444; }}
.note {{ color: #555; }}
.ids {{ font-size: 8pt; color: #666; word-break: break-all; }}
.meta th {{ width: 30mm; }}
small {{ color: #444; }}
</style></head><body>
<h1>校外培训违规线索证据报告</h1>
<p style="text-align:center">（依据“双减”政策开展的网络宣传监测 · 由 jianfu 自动生成，供执法人员复核）</p>
<table class="kv meta">
{_row("导出范围", e(meta["selection"]))}
{_row("案件数量", f"{len(cases)} 个（违规内容 {n_viol} 项，问题线索 {len(findings)} 条）")}
{_row("导出时间", f"{e(meta['exported_china'])}（北京时间）/ {e(meta['exported_at'])}（UTC）")}
{_row("导出人", e(meta["exporter"]))}
{_row("工具版本", e(meta["tool"]))}
{_row("签名公钥指纹", f"<code>{e(meta['key_fingerprint'])}</code>（Ed25519）")}
{_row("可信时间戳", tsa)}
</table>
<p>一个案件是一家机构的一则广告（一张广告图片，或一个网页的文字）及其中的全部违规内容；同一广告出现在多个页面时只列一次。
每个案件一节：先是广告图片或页面截图（红框标出违规文字，编号对应违规内容表的序号），再列出每项违规内容及其违反的规定。</p>
<p>本报告所附证据包内含网页存档（evidence.wacz，可用 ReplayWeb.page 离线回放）、问题线索明细（findings.json）、
标注图片、证据保管链（custody.json）以及列有每个文件 SHA-256 的签名清单（manifest.json / manifest.sig）。
使用 jianfu verify 可校验全部文件与签名；任何文件被改动、增加或删除，校验都会失败。</p>
{"<p><b>导出提示：</b></p><ul>" + warn + "</ul>" if warn else ""}
<h2>案件汇总</h2>
<table class=list><tr><th>序号</th><th>机构</th><th>广告</th><th>问题类别</th><th>违规</th><th>末次发现</th>
<th>状态</th></tr>{summary}</table>
{"".join(case_section(c) for c in cases)}
<section class=case><h2>证据保管链</h2>
<p>从抓取到导出的每一步（时间为北京时间；逐条记录见 custody.json）：</p>
<table class=custody><colgroup><col><col><col class=a><col class=d></colgroup>
<tr><th>时间</th><th>步骤</th><th>执行者</th><th>说明</th></tr>{custody_rows(custody, cases)}</table>
<h2>完整性与校验</h2>
<p>manifest.json 列出证据包内除 manifest.json、manifest.sig、manifest.tsr 以外每个文件的 SHA-256 与字节数，
并由导出所用存储的 Ed25519 私钥签名（manifest.sig，公钥为 public_key.pem，指纹
<code>{e(meta['key_fingerprint'])}</code>）。压缩包本身采用固定格式（不压缩、固定元数据），
校验时逐字节重建比对。{tsa}</p>
</section>
</body></html>
"""


def chromium_version() -> str | None:
    try:
        out = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=20)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def html_to_pdf(html_path: Path, pdf_path: Path, timeout: float = 120) -> bytes:
    """Print ``html_path`` to PDF with headless Chromium; returns the PDF bytes."""
    if not (shutil.which(CHROMIUM) or Path(CHROMIUM).is_file()):
        raise PdfError(f"Chromium not found at {CHROMIUM} (install Debian's chromium or set JIANFU_CHROMIUM)")
    with tempfile.TemporaryDirectory(prefix="jianfu-chromium-") as profile:
        cmd = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--print-to-pdf={pdf_path}",
               html_path.resolve().as_uri()]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise PdfError(f"Chromium did not finish printing within {timeout:.0f}s") from None
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    if not pdf_path.is_file() or pdf_path.stat().st_size == 0:
        tail = err.decode("utf-8", "replace").strip().splitlines()[-2:]
        raise PdfError(f"Chromium wrote no PDF (exit {proc.returncode}): {' / '.join(tail)}")
    data = pdf_path.read_bytes()
    if not data.startswith(b"%PDF-"):
        raise PdfError("Chromium's output is not a PDF")
    return data
