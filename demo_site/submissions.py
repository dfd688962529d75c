"""Generated submissions for ``jianfu check`` / tips tests and the bench (no binaries committed).

A phone photo of a demo ad (poster on a wall, taken at an angle: perspective, blur, moiré, glare,
JPEG at quality 60, optionally rotated with an EXIF orientation tag), a multi-page PDF brochure with
text and image pages (fpdf2), a saved WeChat-article-like page with lazy ``data-src`` images (HTML
and MHTML), and hostile uploads: a pixel bomb, a PDF with JavaScript, a zip named ``.png``.
"""

from __future__ import annotations

import base64
import io
import random
import zipfile
import zlib
from email.mime.image import MIMEImage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from demo_site.adgen import AdImage, fonts, render

PHOTO_AD_LINES = ["幼小衔接拼音班火热招生", "中考保过班名额有限", "咨询电话 010-62345678"]


def poster(lines: list[str] | None = None, seed: int = 7) -> AdImage:
    """A flat poster (the banner OCR would see if it were saved, not photographed)."""
    return render(lines or PHOTO_AD_LINES, size=(900, 600), font_size=64, style="clean", seed=seed,
                  colors=[(200, 20, 20), (20, 20, 120), (10, 10, 10)])


def phone_photo(ad: AdImage | None = None, *, seed: int = 1, angle: float = 0.18, blur: float = 1.2,
                moire: float = 10.0, glare: float = 0.35, quality: int = 60, exif_rotate: bool = False,
                scale: float = 1.0) -> bytes:
    """The ad photographed on a wall at an angle: a random four-point perspective (``angle`` is how
    far corners move, as a fraction of the side), lens blur, a moiré pattern, a glare spot, JPEG at
    ``quality``; ``scale`` < 1 is a photo taken from further away (the poster smaller in the frame).
    With ``exif_rotate`` the pixels are stored turned 90° with EXIF Orientation 6, as
    phones do."""
    import cv2

    rng = random.Random(seed)
    ad = ad or poster()
    flat_img = Image.open(io.BytesIO(ad.data)).convert("RGB")
    if scale != 1.0:
        flat_img = flat_img.resize((int(flat_img.width * scale), int(flat_img.height * scale)), Image.LANCZOS)
    flat = np.asarray(flat_img)
    h, w = flat.shape[:2]
    out_w, out_h = int(w * 1.5), int(h * 1.6)
    wall = np.full((out_h, out_w, 3), (150, 140, 125), np.uint8)
    noise = np.random.default_rng(seed).normal(0, 12, wall.shape)
    wall = np.clip(wall + noise, 0, 255).astype(np.uint8)
    ox, oy = (out_w - w) / 2, (out_h - h) / 2
    j = angle * min(w, h)
    dst = np.array([[ox + rng.uniform(0, j), oy + rng.uniform(0, j)],
                    [ox + w - rng.uniform(0, j), oy + rng.uniform(-j / 2, j / 2)],
                    [ox + w - rng.uniform(0, j / 2), oy + h - rng.uniform(0, j)],
                    [ox + rng.uniform(-j / 2, j / 2), oy + h - rng.uniform(0, j / 2)]], dtype=np.float32)
    src = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(flat, matrix, (out_w, out_h))
    mask = cv2.warpPerspective(np.full((h, w), 255, np.uint8), matrix, (out_w, out_h))
    photo = np.where(mask[..., None] > 0, warped, wall).astype(np.float32)
    yy, xx = np.mgrid[0:out_h, 0:out_w]
    if moire:
        photo += moire * np.sin((xx * 0.9 + yy * 0.35) * 1.7)[..., None]
    if glare:
        cx, cy = rng.uniform(0.3, 0.7) * out_w, rng.uniform(0.3, 0.7) * out_h
        spot = np.exp(-(((xx - cx) / (out_w * 0.18)) ** 2 + ((yy - cy) / (out_h * 0.18)) ** 2))
        photo += glare * 255 * spot[..., None]
    img = Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8))
    if blur:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    buf = io.BytesIO()
    if exif_rotate:  # stored turned 90° clockwise-undo: a viewer applying Orientation 6 shows it upright
        exif = Image.Exif()
        exif[0x0112] = 6
        img.transpose(Image.Transpose.ROTATE_90).save(buf, "JPEG", quality=quality, exif=exif)
    else:
        img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


# -- PDF brochure ----------------------------------------------------------------------------------

BROCHURE_TEXT = [
    "启明星学堂 2026 秋季课程手册",
    "本机构开设幼小衔接拼音班，学前班识字数学同步开课。",
    "初中数理化提前学，寒假集训营每天8小时。",
    "美术书法周末体验课，少儿篮球夏令营。",
]


def brochure_pdf(pages: int = 4, *, seed: int = 3) -> bytes:
    """A brochure: text pages (a real text layer, CJK font) alternating with pages holding only a
    printed ad image (its words only in pixels)."""
    from fpdf import FPDF

    path, index = fonts()[0]
    pdf = FPDF(unit="pt", format="A4")
    pdf.add_font("cjk", fname=path, collection_font_number=index)
    rng = random.Random(seed)
    from demo_site.adgen import VIOLATIONS

    phrases = list(VIOLATIONS)
    for n in range(pages):
        pdf.add_page()
        if n % 2 == 0:
            pdf.set_font("cjk", size=16)
            for line in BROCHURE_TEXT if n == 0 else [BROCHURE_TEXT[0], f"第{n + 1}页 课程介绍",
                                                      BROCHURE_TEXT[3], rng.choice(BROCHURE_TEXT[1:3])]:
                pdf.multi_cell(0, 28, line, new_x="LMARGIN", new_y="NEXT")
        else:
            ad = render([phrases[n % len(phrases)], "报名请扫二维码"], size=(900, 300), font_size=56,
                        style="clean", seed=n)
            pdf.image(io.BytesIO(ad.data), x=40, y=120, w=515)
    return bytes(pdf.output())


# -- saved web pages -------------------------------------------------------------------------------

def wechat_article(image: bytes | None = None) -> tuple[str, dict[str, bytes]]:
    """A WeChat-article-like page: text in ``rich_media_content``, images lazy (``data-src`` with a
    placeholder ``src``). Returns (html, image URL → bytes)."""
    image = image or render(["拍照搜题一秒出答案", "希望杯竞赛金牌教练领衔"], size=(900, 300), font_size=56,
                            style="clean", seed=11).data
    url = "https://mmbiz.qpic.cn/mmbiz_png/abc123/640?wx_fmt=png"
    html = f"""<!DOCTYPE html><html><head><meta charset="utf-8">
<meta property="og:url" content="https://mp.weixin.qq.com/s/AbCdEf123">
<title>秋季招生｜名额有限</title></head><body>
<div id="js_content" class="rich_media_content">
<p>各位家长好！本周末开设小学奥数提高班。</p>
<p>初中数理化提前学，暑假集训每天8小时，不达目标全额退款。</p>
<p><img class="rich_pages wxw-img" data-src="{url}" data-type="png"
  src="data:image/gif;base64,R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw=="></p>
</div></body></html>"""
    return html, {url: image}


def mhtml(html: str, resources: dict[str, bytes], url: str = "https://mp.weixin.qq.com/s/AbCdEf123") -> bytes:
    """A page saved as MHTML (what Chromium's 'Save as single file' writes)."""
    msg = MIMEMultipart("related", type="text/html")
    msg["Snapshot-Content-Location"] = url
    msg["Subject"] = "saved page"
    part = MIMEText(html, "html", "utf-8")
    part["Content-Location"] = url
    msg.attach(part)
    for loc, data in resources.items():
        img = MIMEImage(data)
        img["Content-Location"] = loc
        msg.attach(img)
    return msg.as_bytes()


# -- hostile uploads -------------------------------------------------------------------------------

def pixel_bomb(width: int = 60000, height: int = 60000) -> bytes:
    """A small PNG whose header claims ``width`` × ``height`` pixels (one row of data, the rest
    missing): decoding it would need gigabytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (len(data).to_bytes(4, "big") + kind + data
                + zlib.crc32(kind + data).to_bytes(4, "big"))

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    idat = zlib.compress(b"\x00" * (width + 1) * 8, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def pdf_with_javascript(hidden: bool = False) -> bytes:
    """A one-page PDF that runs JavaScript when opened (``/OpenAction`` → ``/JS``). ``hidden``
    writes the names with #xx escapes, as malware does to dodge naive scanners."""
    js, action = (b"/J#61vaScript", b"/Open#41ction") if hidden else (b"/JavaScript", b"/OpenAction")
    objs = [b"<< /Type /Catalog /Pages 2 0 R " + action + b" 4 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
            b"<< /Type /Action /S " + js + b" /JS (app.alert\\('hi'\\)) >>"]
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def zip_named_png() -> bytes:
    """A zip archive (holding an ad image) — to be sent under the name ``poster.png``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("ad.png", poster().data)
    return buf.getvalue()


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def heic(image_bytes: bytes) -> bytes:
    """The image re-encoded as HEIC (what an iPhone sends), via pillow-heif."""
    from pillow_heif import register_heif_opener

    register_heif_opener()
    buf = io.BytesIO()
    Image.open(io.BytesIO(image_bytes)).convert("RGB").save(buf, "HEIF", quality=70)
    return buf.getvalue()


def screenshot_with_frame() -> bytes:
    """A flat phone screenshot (no perspective): status bar, the ad, white margins."""
    ad = Image.open(io.BytesIO(poster().data))
    shot = Image.new("RGB", (ad.width + 80, ad.height + 300), "white")
    ImageDraw.Draw(shot).rectangle((0, 0, shot.width, 60), fill=(30, 30, 30))
    shot.paste(ad, (40, 150))
    buf = io.BytesIO()
    shot.save(buf, "PNG")
    return buf.getvalue()
