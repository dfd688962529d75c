"""What a sent-in file is, told from its bytes, and whether it may be read at all.

``inspect_upload(data, name)`` runs before anything parses the file: a size cap, the type from
magic bytes (the name and any declared type are ignored), archives and programs refused (never
unpacked or run), the pixel count of an image read from its header (decompression bombs), and a
PDF with scripts, automatic actions, launch actions or embedded files refused. Every refusal is an
:class:`UploadRefused` with one line in Chinese for the investigator.
"""

from __future__ import annotations

import io
import re
import zlib
from dataclasses import dataclass

from detectors.images import sniff

MAX_UPLOAD_BYTES = 30 * 1024 * 1024
MAX_PIXELS = 40_000_000
MAX_PDF_PAGES = 200
MAX_INFLATE = 64 * 1024 * 1024   # bytes of PDF object streams inflated to look for hidden actions

IMAGE_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp",
               "bmp": "image/bmp", "svg": "image/svg+xml", "heic": "image/heic"}
KIND_ZH = {"image": "图片", "pdf": "PDF 文件", "html": "网页文件", "mhtml": "网页存档（MHTML）", "url": "网址"}

_ARCHIVES = (
    (b"PK\x03\x04", "ZIP 压缩包（或 Office 文档）"), (b"PK\x05\x06", "ZIP 压缩包"), (b"Rar!\x1a\x07", "RAR 压缩包"),
    (b"7z\xbc\xaf\x27\x1c", "7z 压缩包"), (b"\x1f\x8b", "gzip 压缩包"), (b"BZh", "bzip2 压缩包"),
    (b"\xfd7zXZ\x00", "xz 压缩包"), (b"\x28\xb5\x2f\xfd", "zstd 压缩包"), (b"MSCF", "CAB 压缩包"),
)
_PROGRAMS = ((b"MZ", "Windows 可执行程序"), (b"\x7fELF", "Linux 可执行程序"), (b"\xca\xfe\xba\xbe", "可执行程序"),
             (b"#!", "脚本"))
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")
# PDF names that make a document do something when opened, or carry other files
_PDF_ACTIVE = {b"JavaScript": "含有 JavaScript 脚本", b"JS": "含有 JavaScript 脚本",
               b"AA": "含有自动触发的动作（AA）",
               b"Launch": "含有启动外部程序的动作（Launch）", b"EmbeddedFile": "含有嵌入文件",
               b"EmbeddedFiles": "含有嵌入文件", b"RichMedia": "含有富媒体（Flash 等）", b"XFA": "含有 XFA 表单脚本",
               b"SubmitForm": "含有提交表单的动作", b"ImportData": "含有导入数据的动作", b"GoToE": "含有跳转到嵌入文件的动作"}
# /OpenAction followed by a destination array only turns to a page (writers set it for the zoom);
# followed by a dictionary or an object reference it is an action run on opening
_PDF_OPEN_ACTION = re.compile(rb"/Open(?:A|#41)ction(?!\s*\[)")
_PDF_NAME = re.compile(rb"/((?:[A-Za-z0-9]|#[0-9A-Fa-f]{2})+)")
_PDF_STREAM = re.compile(rb"stream\r?\n(.*?)endstream", re.S)
_HTML_HEAD = re.compile(rb"^\s*(<!--.*?-->\s*)*(<!doctype\s+html|<html|<head|<meta|<title|<body|<div|<p[\s>])",
                        re.S | re.I)


class UploadRefused(ValueError):
    """This file will not be read. ``reason`` is one line in Chinese."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass
class UploadKind:
    kind: str          # image | pdf | html | mhtml
    media_type: str
    format: str        # png, jpeg, …, pdf, html, mhtml


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.0f} MB"


def inspect_upload(data: bytes, name: str = "", *, max_bytes: int = MAX_UPLOAD_BYTES,
                   max_pixels: int = MAX_PIXELS) -> UploadKind:
    """The kind of ``data``, or :class:`UploadRefused` with the reason. ``name`` only names it."""
    label = f"“{name}”" if name else "该文件"
    if not data:
        raise UploadRefused(f"{label}是空文件", "empty")
    if len(data) > max_bytes:
        raise UploadRefused(f"{label}太大（{_mb(len(data))}），上限 {_mb(max_bytes)}", "too_large")
    head = data[:16]
    for magic, what in _ARCHIVES:
        if head.startswith(magic):
            raise UploadRefused(f"{label}实际是{what}，压缩包不予解压、不予检查；请解压后逐个上传其中的图片或 PDF",
                                "archive")
    for magic, what in _PROGRAMS:
        if head.startswith(magic):
            raise UploadRefused(f"{label}实际是{what}，不予检查", "program")
    if data[257:262] == b"ustar":
        raise UploadRefused(f"{label}实际是 tar 归档，压缩包不予解压、不予检查", "archive")
    fmt = sniff(data)
    if fmt is None and data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        fmt = "heic"
    if fmt is not None:
        _check_pixels(data, fmt, label, max_pixels)
        return UploadKind("image", IMAGE_TYPES[fmt], fmt)
    if data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis"):
        raise UploadRefused(f"{label}是 AVIF 图片，暂不支持；请转换为 JPEG 或 PNG 后上传", "unsupported")
    if b"%PDF-" in data[:1024]:
        check_pdf(data, label)
        return UploadKind("pdf", "application/pdf", "pdf")
    text_head = data[:4096].lstrip(b"\xef\xbb\xbf")
    if re.search(rb"^mime-version:", text_head, re.I | re.M) and re.search(rb"multipart/related", text_head, re.I):
        return UploadKind("mhtml", "multipart/related", "mhtml")
    if _HTML_HEAD.match(text_head):
        return UploadKind("html", "text/html", "html")
    raise UploadRefused(f"{label}不是可检查的图片、PDF 或网页文件（文件头 {data[:8].hex()}）", "unknown_type")


def _check_pixels(data: bytes, fmt: str, label: str, max_pixels: int) -> None:
    """Width × height from the header only (no pixels decoded) against ``max_pixels``."""
    if fmt == "svg":
        return  # never rasterised: its <text> is read (detectors.images)
    import warnings

    from PIL import Image

    if fmt == "heic":
        register_heif()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
    except Image.DecompressionBombError as e:  # Pillow's own cap (2 × MAX_IMAGE_PIXELS), from the header
        count = re.search(r"\((\d+) pixels\)", str(e))
        size = f"约 {int(count.group(1)) // 10_000} 万像素，" if count else ""
        raise UploadRefused(f"{label}的像素过多（{size}上限 {max_pixels // 10_000} 万像素），疑似“像素炸弹”，不予解码",
                            "too_many_pixels") from e
    except Exception as e:  # noqa: BLE001 - any failure to read a header is a broken file
        raise UploadRefused(f"{label}看起来是 {fmt.upper()} 图片，但文件已损坏，无法读取（{type(e).__name__}）",
                            "corrupt") from e
    if width * height > max_pixels:
        raise UploadRefused(f"{label}的像素过多（{width}×{height}，上限 {max_pixels // 10_000} 万像素），"
                            "疑似“像素炸弹”，不予解码", "too_many_pixels")


def register_heif() -> None:
    """Let Pillow open HEIC/HEIF (phone photos) through pillow-heif."""
    from pillow_heif import register_heif_opener

    register_heif_opener()


def _pdf_names(data: bytes) -> set[bytes]:
    """Every /Name of the PDF's objects, #xx escapes decoded: outside streams (stream data is not
    read, so image bytes never look like a name), and inside Flate-compressed object streams
    (``/ObjStm``, which can hide dictionaries), inflating at most MAX_INFLATE in all."""
    def names(blob: bytes) -> set[bytes]:
        out = set()
        for m in _PDF_NAME.finditer(blob):
            raw = m.group(1)
            if b"#" in raw:
                raw = re.sub(rb"#([0-9A-Fa-f]{2})", lambda h: bytes([int(h.group(1), 16)]), raw)
            out.add(raw)
        return out

    found = names(_PDF_STREAM.sub(b"stream\nendstream", data))
    budget = MAX_INFLATE
    for m in _PDF_STREAM.finditer(data):
        if budget <= 0:
            break
        if b"ObjStm" not in names(data[max(0, m.start() - 400):m.start()]):
            continue
        d = zlib.decompressobj()
        try:
            inflated = d.decompress(m.group(1), budget)
        except zlib.error:
            continue
        budget -= len(inflated)
        found |= names(inflated)
    return found


def check_pdf(data: bytes, label: str = "该文件") -> None:
    """Refuse a PDF that acts when opened (scripts, launch, automatic actions), carries other
    files, is encrypted, broken or too long. Checked twice: its names (also inside compressed object
    streams) and PDFium's own count of scripts and attachments."""
    active = sorted({why for name, why in _PDF_ACTIVE.items() if name in _pdf_names(data)})
    if _PDF_OPEN_ACTION.search(_PDF_STREAM.sub(b"stream\nendstream", data)):
        active.append("打开时会自动执行动作（OpenAction）")
    if active:
        raise UploadRefused(f"{label}是 PDF，但{'、'.join(active)}，为安全起见不予打开", "pdf_active")
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    try:
        doc = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as e:
        why = "已加密（需要密码）" if "password" in str(e).lower() else "已损坏，无法打开"
        raise UploadRefused(f"{label}是 PDF，但{why}", "pdf_unreadable") from e
    try:
        if pdfium_c.FPDFDoc_GetAttachmentCount(doc.raw) > 0:
            raise UploadRefused(f"{label}是 PDF，但含有嵌入文件，为安全起见不予打开", "pdf_active")
        if pdfium_c.FPDFDoc_GetJavaScriptActionCount(doc.raw) > 0:
            raise UploadRefused(f"{label}是 PDF，但含有 JavaScript 脚本，为安全起见不予打开", "pdf_active")
        if len(doc) > MAX_PDF_PAGES:
            raise UploadRefused(f"{label}有 {len(doc)} 页，上限 {MAX_PDF_PAGES} 页；请只上传相关页面", "too_long")
        if len(doc) == 0:
            raise UploadRefused(f"{label}是没有页面的 PDF", "empty")
    finally:
        doc.close()
