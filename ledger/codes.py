"""Unified social credit codes (统一社会信用代码, GB 32100-2015) and school-running licence
numbers (办学许可证号): validation, normalisation, and finding them printed in page text."""

from __future__ import annotations

import re
from dataclasses import dataclass

# GB 32100-2015: 18 characters from these 31 (no I, O, S, V, Z); the 18th is a check character
CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_VALUE = {c: i for i, c in enumerate(CHARSET)}
WEIGHTS = tuple(pow(3, i, 31) for i in range(17))  # 1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28
# full-width ASCII (ＡＢＣ１２３) → ASCII, one character for one so offsets into the text still hold
_HALF = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}


_FULLWIDTH = re.compile("[\uff01-\uff5e\u3000]")


def halfwidth(text: str) -> str:
    return text.translate(_HALF) if _FULLWIDTH.search(text) else text


def check_char(first17: str) -> str:
    """The 18th character of a credit code whose first 17 are ``first17``."""
    total = sum(_VALUE[c] * w for c, w in zip(first17, WEIGHTS, strict=True))
    return CHARSET[(31 - total % 31) % 31]


def normalize_credit_code(raw: str) -> str:
    return re.sub(r"[\s\-]", "", halfwidth(raw or "")).upper()


def credit_code_problem(code: str) -> str | None:
    """Why ``code`` (already normalised) is not a valid credit code, in Chinese; None when valid."""
    if not code:
        return "缺少统一社会信用代码"
    if len(code) != 18:
        return f"统一社会信用代码应为18位，“{code}”为{len(code)}位"
    bad = sorted({c for c in code if c not in _VALUE})
    if bad:
        return f"统一社会信用代码“{code}”含有不允许的字符：{''.join(bad)}"
    if not code[2:8].isdigit():
        return f"统一社会信用代码“{code}”第3-8位应为行政区划码（数字）"
    want = check_char(code[:17])
    if code[17] != want:
        return f"统一社会信用代码“{code}”校验位错误（应为 {want}）"
    return None


def is_credit_code(code: str) -> bool:
    return credit_code_problem(code) is None


def make_credit_code(dept: str, kind: str, area: str, org: str) -> str:
    """A valid code from its parts: registration department (1 char), institution type (1 char),
    administrative division (6 digits), organisation code (9 chars)."""
    body = f"{dept}{kind}{area}{org}".upper()
    if len(body) != 17:
        raise ValueError(f"17 characters before the check character, not {len(body)}: {body!r}")
    return body + check_char(body)


def org_code_check(body8: str) -> str:
    """GB 11714 check character of an 8-character organisation code body."""
    weights = (3, 7, 9, 10, 5, 8, 4, 2)
    total = sum((int(c) if c.isdigit() else ord(c) - 55) * w for c, w in zip(body8, weights, strict=True))
    c = 11 - total % 11
    return "X" if c == 10 else "0" if c == 11 else str(c)


def normalize_licence(raw: str) -> str:
    """A licence number as written in the ledger: spaces removed, full-width made ASCII."""
    return re.sub(r"\s+", "", halfwidth(raw or "")).strip()


def licence_key(raw: str) -> str:
    """What two spellings of the same licence number share: no spaces, no trailing 号, upper case."""
    return normalize_licence(raw).removesuffix("号").upper()


# -- identifiers printed on pages ---------------------------------------------------------------
_CODE_RE = re.compile(r"(?<![0-9A-Za-z])([0-9A-Za-z]{2}\d{6}[0-9A-Za-z]{10})(?![0-9A-Za-z])")
_CODE_LABEL_RE = re.compile(r"(?:统一)?社会信用代码|信用代码")
_LICENCE_RE = re.compile(
    r"(?:办学许可证(?:号|编号)?|许可证(?:号|编号))[\s:：为是（(）)]*([0-9A-Za-z\u4e00-\u9fff\-]{4,32}?号|[0-9A-Za-z\-]{6,32})"
    r"|(教[民社]?\s?\d{10,20}\s?号?)")


@dataclass(frozen=True, slots=True)
class Printed:
    """An identifier found in a text: ``kind`` is credit_code or licence; ``value`` is normalised;
    ``start``/``end`` are offsets into the original text (``text[start:end]`` is what was shown)."""

    kind: str
    value: str
    start: int
    end: int
    valid: bool = True  # credit codes only: the check character holds


def printed_identifiers(text: str) -> list[Printed]:
    """Credit codes and licence numbers shown in ``text``. A credit code counts when its check
    character holds, or when it follows a 信用代码 label (then it is reported as invalid)."""
    flat = halfwidth(text)
    out: list[Printed] = []
    for m in _CODE_RE.finditer(flat):
        code = m.group(1).upper()
        valid = is_credit_code(code)
        labelled = bool(_CODE_LABEL_RE.search(flat[max(0, m.start() - 16):m.start()]))
        if valid or labelled:
            out.append(Printed("credit_code", code, m.start(1), m.end(1), valid))
    taken = [(p.start, p.end) for p in out]
    for m in _LICENCE_RE.finditer(flat):
        group = 1 if m.group(1) else 2
        start, end = m.start(group), m.end(group)
        if any(s < end and start < e for s, e in taken):
            continue
        value = normalize_licence(m.group(group))
        if value.isdigit() and len(value) == 11:  # a phone number after a label, not a licence
            continue
        out.append(Printed("licence", value, start, end))
        taken.append((start, end))
    return sorted(out, key=lambda p: p.start)
