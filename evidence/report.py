"""The Chinese, printable report: ``report.html`` (one section per finding) and ``report.pdf``
printed from it by headless Chromium (the Debian package; no network, temporary profile).

Images are referenced by their paths inside the packet, so the HTML works when the packet is
unzipped; the PDF embeds them.
"""

from __future__ import annotations

import html
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

CATEGORY_ZH = {
    "preschool_subject": "面向学龄前儿童开展学科类培训",
    "photo_search": "拍照搜题等惰化学生思维的功能",
    "competition_ranking": "竞赛、考级、排名宣传",
    "advance_teaching": "超标超前培训",
    "off_hours_schedule": "在法定节假日、休息日及寒暑假期组织学科类培训",
    "prepaid_fees": "违规预收费（超过3个月或60课时）",
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


def e(v: Any) -> str:
    return html.escape("" if v is None else str(v))


def marked_context(f: dict[str, Any]) -> str:
    ctx, text = f.get("context") or "", f.get("text") or ""
    off = min(f.get("start", 0), 40)
    if ctx[off:off + len(text)] != text:
        off = ctx.find(text)
    if off < 0 or not text:
        return e(ctx)
    return e(ctx[:off]) + "<mark>" + e(text) + "</mark>" + e(ctx[off + len(text):])


def _row(label: str, value: str) -> str:
    return f"<tr><th>{e(label)}</th><td>{value}</td></tr>"


def _figure(path: str | None, caption: str) -> str:
    if not path:
        return ""
    return f'<figure><img src="{e(path)}" alt="{e(caption)}"><figcaption>{e(caption)}</figcaption></figure>'


def ledger_text(rec: dict[str, Any]) -> str:
    """The institution's ledger (台账) record as the scan found it (ledger.records.Institution.snapshot)."""
    return e(f"{rec['name']}，统一社会信用代码 {rec['credit_code']}，办学许可证号 {rec.get('licence_no') or '无'}，"
             f"{rec['type_label']}，{rec['status_label']}" + (f"，{rec['district']}" if rec.get("district") else ""))


def finding_section(f: dict[str, Any]) -> str:
    rec = f["records"]["page_response"] or {}
    files = f["files"]
    rows = [
        _row("线索编号", f"<code>{e(f['id'])}</code>"),
        _row("机构", e(f.get("institution") or "（未命名）") + (f"（{e(f['district'])}）" if f.get("district") else "")),
        *([_row("台账记录", ledger_text(f["ledger"]))] if f.get("ledger") else []),
        _row("问题类别", f"{e(f['category_zh'])}<br><small><code>{e(f['category'])}</code></small>"),
        _row("命中规则", f"<code>{e(f['rule_id'])}</code>，严重程度 {e(SEVERITY_ZH.get(f['severity'], f['severity']))}，"
                         f"置信分 {f['score']:.2f}"),
        _row("匹配文字", f"<span class=hit>{e(f['text'])}</span>"),
        _row("上下文", f"<div class=ctx>{marked_context(f)}</div>"),
        _row("法律依据", e(f["basis"])),
        _row("判定说明", "<ol>" + "".join(f"<li>{e(x)}</li>" for x in f.get("explanation") or []) + "</ol>"),
        _row("来源", e(SOURCE_ZH.get(f["source"], f["source"]))),
        _row("页面", f"{e(f['page'].get('title'))}<br><code class=url>{e(f['page']['url'])}</code>"),
    ]
    if f.get("image_url"):
        rows.append(_row("图片", f"<code class=url>{e(f['image_url'])}</code><br>"
                                f"<small>SHA-256 {e(f.get('image_sha256'))}</small>"))
    cap = f["captured_at"]
    rows += [
        _row("抓取时间", f"{e(cap['china'])}（北京时间）<br>{e(cap['utc'])}（UTC）"),
        _row("服务器 IP", e(f.get("server_ip") or "未记录")),
        _row("存档记录", f"<code>{e(rec.get('record_id'))}</code><br><small>证据包内 evidence.wacz → "
                         f"archive/data.warc.gz 偏移 {e((rec.get('packet') or {}).get('offset'))}；记录 SHA-256 "
                         f"{e(rec.get('record_sha256'))}</small>"),
        _row("扫描", f"<code>{e(f['scan_id'])}</code>；首次发现 {e(f['first_seen_at'])}，末次发现 {e(f['last_seen_at'])}"),
        _row("复核状态", e(STATUS_ZH.get(f["status"], f["status"]))),
    ]
    figs = []
    if files.get("highlight"):
        figs.append(_figure(files.get("highlight_crop") or files["highlight"],
                            f"图 {f['no']}-1：红框标出匹配文字“{f['text']}”（依据：{f.get('highlight_from', '')}）"))
    if files.get("image_ocr_boxes"):
        figs.append(_figure(files["image_ocr_boxes"], f"图 {f['no']}-2：原始广告图片及 OCR 识别的全部文字框（蓝框，编号见 "
                                                      f"{files.get('image_ocr')}）"))
    if files.get("screenshot") and not files.get("highlight"):
        figs.append(_figure(files["screenshot"], f"图 {f['no']}-2：页面截图"))
    if f.get("highlight_note"):
        figs.append(f"<p class=note>{e(f['highlight_note'])}。</p>")
    return (f'<section class=finding id="f-{e(f["id"])}"><h2>线索 {f["no"]}：{e(f["category_zh"])}</h2>'
            f"<table class=kv>{''.join(rows)}</table>{''.join(figs)}</section>")


def render_html(findings: list[dict[str, Any]], meta: dict[str, Any], custody: list[dict[str, Any]]) -> str:
    summary = "".join(
        f"<tr><td>{f['no']}</td><td>{e(f.get('institution'))}</td><td>{e(f['category_zh'])}</td>"
        f"<td class=hit>{e(f['text'])}</td><td>{e(SOURCE_ZH.get(f['source'], ''))}</td>"
        f"<td><code class=url>{e(f['page']['url'])}</code></td></tr>" for f in findings)
    tsa = (f"已向可信时间戳服务 <code>{e(meta['tsa_url'])}</code> 申请 RFC 3161 时间戳，令牌见 manifest.tsr。"
           if meta.get("tsa_url") else
           "<b>未配置可信时间戳服务（RFC 3161）</b>：本证据包的导出时间仅以导出计算机的时钟为准，"
           "未经第三方时间戳机构证明。")
    warn = "".join(f"<li>{e(w)}</li>" for w in meta.get("warnings") or [])
    custody_rows = "".join(
        f"<tr><td>{e(ev.get('time_china'))}</td><td>{e(ev['step'])}</td><td>{e(ev['actor'])}</td>"
        f"<td>{e(ev['detail'])}</td></tr>" for ev in custody)
    return f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>校外培训违规线索证据报告</title>
<style>
@page {{ size: A4; margin: 16mm 14mm; }}
body {{ font-family: "Noto Sans CJK SC", "Noto Serif CJK SC", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei",
       "AR PL UKai CN", sans-serif; font-size: 10.5pt; line-height: 1.55; color: #111; margin: 0 auto;
       max-width: 190mm; }}
h1 {{ font-size: 20pt; text-align: center; margin: 8mm 0 2mm; }}
h2 {{ font-size: 14pt; border-bottom: 2px solid #c00; padding-bottom: 2px; }}
table {{ border-collapse: collapse; width: 100%; margin: 3mm 0; }}
th, td {{ border: 1px solid #999; padding: 3px 6px; vertical-align: top; text-align: left; }}
table.kv th {{ width: 22mm; background: #f3f3f3; white-space: nowrap; }}
code {{ font-family: "DejaVu Sans Mono", monospace; font-size: 8.5pt; word-break: break-all; }}
.url {{ word-break: break-all; }}
mark, .hit {{ background: #ffe0e0; color: #b00000; font-weight: bold; }}
.ctx {{ white-space: pre-wrap; }}
section.finding {{ break-before: page; }}
figure {{ margin: 3mm 0; break-inside: avoid; text-align: center; }}
figure img {{ max-width: 100%; max-height: 150mm; border: 1px solid #ccc; }}
figcaption {{ font-size: 9pt; color: #444; }}
td.hit {{ white-space: nowrap; }}
.note {{ color: #555; font-style: italic; }}
.meta th {{ width: 30mm; }}
small {{ color: #444; }}
</style></head><body>
<h1>校外培训违规线索证据报告</h1>
<p style="text-align:center">（依据“双减”政策开展的网络宣传监测 · 由 jianfu 自动生成，供执法人员复核）</p>
<table class="kv meta">
{_row("导出范围", e(meta["selection"]))}
{_row("线索数量", str(len(findings)))}
{_row("导出时间", f"{e(meta['exported_china'])}（北京时间）/ {e(meta['exported_at'])}（UTC）")}
{_row("导出人", e(meta["exporter"]))}
{_row("工具版本", e(meta["tool"]))}
{_row("签名公钥指纹", f"<code>{e(meta['key_fingerprint'])}</code>（Ed25519）")}
{_row("可信时间戳", tsa)}
</table>
<p>本报告所附证据包内含网页存档（evidence.wacz，可用 ReplayWeb.page 离线回放）、问题线索明细（findings.json）、
标注截图、证据保管链（custody.json）以及列有每个文件 SHA-256 的签名清单（manifest.json / manifest.sig）。
使用 <code>jianfu verify 证据包文件</code> 可校验全部文件与签名；任何文件被改动、增加或删除，校验都会失败。</p>
{"<p><b>导出提示：</b></p><ul>" + warn + "</ul>" if warn else ""}
<h2>线索汇总</h2>
<table><tr><th>序号</th><th>机构</th><th>类别</th><th>匹配文字</th><th>来源</th><th>页面</th></tr>{summary}</table>
{"".join(finding_section(f) for f in findings)}
<section class=finding><h2>证据保管链</h2>
<p>从抓取到导出的每一步（时间为北京时间；完整记录见 custody.json）：</p>
<table><tr><th>时间</th><th>步骤</th><th>执行者</th><th>说明</th></tr>{custody_rows}</table>
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
