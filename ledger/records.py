"""An institution as the ledger holds it, the platform export's columns, and one row → record.

Every column the importer understands is in ``COLUMNS`` (canonical header first, then the other
spellings seen in exports); docs/ledger.md lists them. Parsing is pure: a row (header → cell text)
becomes an ``Institution`` or a ``RowRejected`` with a reason in Chinese.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from ledger.codes import credit_code_problem, halfwidth, licence_key, normalize_credit_code, normalize_licence

TYPES = {"subject": "学科类", "non_subject": "非学科类"}
STATUSES = {"approved": "白名单（已审批）", "pending": "待审批", "blacklisted": "黑名单",
            "revoked": "已吊销", "cancelled": "已注销"}
BARRED = ("blacklisted", "revoked", "cancelled")  # may not run training at all
NON_SUBJECT_FIELDS = ("体育", "文化艺术", "科技", "职业技能", "综合实践", "其他")

# field → (canonical header, other headers seen in exports, required)
COLUMNS: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "name": ("机构名称", ("机构全称", "培训机构名称", "名称", "单位名称"), True),
    "credit_code": ("统一社会信用代码", ("社会信用代码", "信用代码", "统一代码"), True),
    "licence_no": ("办学许可证号", ("办学许可证编号", "办学许可证", "许可证号", "许可证编号"), False),
    "type": ("类型", ("机构类型", "培训类型", "类别", "机构类别", "培训类别"), True),
    "status": ("状态", ("审批状态", "机构状态", "名单状态", "白名单状态"), True),
    "district": ("区县", ("所属区县", "所在区县", "区（县）", "县区", "行政区划", "所属区域"), False),
    "address": ("地址", ("办学地址", "培训地址", "注册地址", "机构地址"), False),
    "sites": ("网站", ("网址", "官网", "网站地址", "官方网站", "网站网址"), False),
    "wechat": ("微信公众号", ("公众号", "微信号"), False),
    "mini_programs": ("小程序", ("微信小程序",), False),
    "phones": ("联系电话", ("电话", "联系方式", "咨询电话"), False),
}
LIST_FIELDS = ("sites", "wechat", "mini_programs", "phones")
RECORD_FIELDS = ("name", "licence_no", "type", "field", "status", "district", "address", *LIST_FIELDS)

_STATUS_WORDS = {
    "approved": ("白名单", "已审批", "审批通过", "已通过", "通过", "正常", "正常办学", "已办证", "有效", "approved"),
    "pending": ("待审批", "审批中", "审核中", "待审核", "未审批", "申请中", "pending"),
    "blacklisted": ("黑名单", "列入黑名单", "已列入黑名单", "blacklisted"),
    "revoked": ("吊销", "已吊销", "撤销", "已撤销", "许可证吊销", "吊销许可证", "revoked"),
    "cancelled": ("注销", "已注销", "取消", "已取消", "终止办学", "停办", "已停办", "cancelled"),
}
STATUS_OF = {w: code for code, words in _STATUS_WORDS.items() for w in words}
_FIELD_WORDS = {"体育": "体育", "文化艺术": "文化艺术", "艺术": "文化艺术", "文艺": "文化艺术", "音乐": "文化艺术",
                "美术": "文化艺术", "舞蹈": "文化艺术", "科技": "科技", "编程": "科技", "职业技能": "职业技能",
                "综合实践": "综合实践", "其他": "其他", "综合": "其他"}
_SPLIT = re.compile(r"[;；,，、|\s]+")
_HEADER_NOISE = re.compile(r"[\s*＊:：()（）\[\]【】]")


def header_key(header: Any) -> str:
    return _HEADER_NOISE.sub("", halfwidth(str(header or "")))


HEADER_FIELD = {header_key(h): f for f, (canon, others, _) in COLUMNS.items() for h in (canon, *others)}


def map_headers(headers: list[Any]) -> dict[int, str]:
    """Column index → field for the headers this importer knows (first occurrence wins)."""
    out: dict[int, str] = {}
    for i, h in enumerate(headers):
        f = HEADER_FIELD.get(header_key(h))
        if f and f not in out.values():
            out[i] = f
    return out


def missing_required(fields: set[str]) -> list[str]:
    return [canon for f, (canon, _, required) in COLUMNS.items() if required and f not in fields]


@dataclass(frozen=True)
class Institution:
    credit_code: str
    name: str
    type: str                         # subject | non_subject
    status: str                       # approved | pending | blacklisted | revoked | cancelled
    licence_no: str | None = None
    field: str | None = None          # 非学科类: 体育 | 文化艺术 | 科技 | …
    district: str | None = None
    address: str | None = None
    sites: tuple[str, ...] = ()
    wechat: tuple[str, ...] = ()
    mini_programs: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()

    @property
    def type_label(self) -> str:
        label = TYPES.get(self.type, self.type)
        return f"{label}（{self.field}）" if self.field else label

    @property
    def status_label(self) -> str:
        return STATUSES.get(self.status, self.status)

    def values(self) -> dict[str, Any]:
        """The stored fields (lists as lists), credit code first."""
        return {f: list(v) if isinstance(v := getattr(self, f), tuple) else v for f in FIELD_ORDER}

    def digest(self) -> str:
        return record_digest(self.values())

    def snapshot(self) -> dict[str, Any]:
        """The ledger record as evidence on a finding: what the ledger said when it was checked."""
        return {"credit_code": self.credit_code, "name": self.name, "licence_no": self.licence_no,
                "type": self.type, "type_label": self.type_label, "status": self.status,
                "status_label": self.status_label, "district": self.district, "address": self.address,
                "sites": list(self.sites)}

    @classmethod
    def from_values(cls, d: dict[str, Any]) -> Institution:
        kw = {k: d.get(k) for k in ("credit_code", "name", "type", "status", "licence_no", "field", "district",
                                    "address")}
        for k in LIST_FIELDS:
            v = d.get(k) or ()
            kw[k] = tuple(json.loads(v) if isinstance(v, str) else v)
        return cls(**kw)


FIELD_ORDER = tuple(f.name for f in fields(Institution))


def record_digest(values: dict[str, Any]) -> str:
    parts = (("\x1e".join(v) if isinstance(v := values.get(k), list | tuple) else (v or ""))
             for k in ("credit_code", *RECORD_FIELDS))
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


def list_json(values: list[str] | tuple[str, ...]) -> str:
    """A list field as the store keeps it (a JSON array)."""
    return json.dumps(list(values), ensure_ascii=False) if values else "[]"


class RowRejected(ValueError):
    """A row that cannot go into the ledger; the message (Chinese) says why."""


@dataclass
class ParsedRow:
    institution: Institution
    present: frozenset[str] = field(default_factory=frozenset)  # fields the file has a column for


def cell_text(v: Any) -> str:
    if v is None or v == "":
        return ""
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return " ".join(halfwidth(str(v)).split())


@lru_cache(maxsize=1024)  # an export repeats a handful of spellings
def parse_type(raw: str) -> tuple[str, str | None]:
    t = re.sub(r"[\s()（）\-—_/·:：]", "", halfwidth(raw))
    if not t:
        raise RowRejected("缺少类型（应为 学科类 或 非学科类）")
    if t.startswith("非学科") or t in ("non_subject", "nonsubject"):
        rest = t.removeprefix("非学科类").removeprefix("非学科").removesuffix("类")
        for word, name in _FIELD_WORDS.items():
            if word in rest:
                return "non_subject", name
        return "non_subject", (rest or None)
    if t.startswith("学科") or t == "subject":
        return "subject", None
    bare = t.removesuffix("类")
    if bare in _FIELD_WORDS:
        return "non_subject", _FIELD_WORDS[bare]
    raise RowRejected(f"类型无法识别：“{raw}”（应为 学科类，或 非学科类（体育、文化艺术、科技……））")


@lru_cache(maxsize=1024)
def parse_status(raw: str) -> str:
    s = re.sub(r"[\s()（）]", "", halfwidth(raw))
    if not s:
        raise RowRejected("缺少状态（应为 白名单、待审批、黑名单、已吊销 或 已注销）")
    code = STATUS_OF.get(s) or STATUS_OF.get(s.removesuffix("状态"))
    if code is None:
        raise RowRejected(f"状态无法识别：“{raw}”（应为 白名单、待审批、黑名单、已吊销 或 已注销）")
    return code


def parse_sites(raw: str) -> tuple[str, ...]:
    out: list[str] = []
    for part in _SPLIT.split(raw):
        if not part:
            continue
        url = part if "://" in part else "http://" + part
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or "." not in parts.hostname and \
                parts.hostname != "localhost":
            raise RowRejected(f"网站地址无效：“{part}”")
        if not parts.path:
            url += "/"
        if url not in out:
            out.append(url)
    return tuple(out)


def split_list(raw: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(p for p in _SPLIT.split(raw) if p))


def parse_row(cells: dict[str, Any]) -> ParsedRow:
    """``cells``: field → raw cell value, for the fields the file has columns for."""
    text = {k: cell_text(v) for k, v in cells.items()}
    name = text.get("name", "")
    if not name:
        raise RowRejected("缺少机构名称")
    code = normalize_credit_code(text.get("credit_code", ""))
    problem = credit_code_problem(code)
    if problem:
        raise RowRejected(problem)
    typ, fld = parse_type(text.get("type", ""))
    status = parse_status(text.get("status", ""))
    inst = Institution(
        credit_code=code, name=name, type=typ, status=status, field=fld,
        licence_no=normalize_licence(text.get("licence_no", "")) or None,
        district=text.get("district") or None, address=text.get("address") or None,
        sites=parse_sites(text.get("sites", "")), wechat=split_list(text.get("wechat", "")),
        mini_programs=split_list(text.get("mini_programs", "")), phones=split_list(text.get("phones", "")),
    )
    present = frozenset(cells) | ({"field"} if "type" in cells else set())
    return ParsedRow(inst, present - {"credit_code"})


def export_row(values: dict[str, Any]) -> list[str]:
    """One institution as a row under ``export_headers()`` (the importer reads it back unchanged)."""
    inst = Institution.from_values(values)
    cells = {"name": inst.name, "credit_code": inst.credit_code, "licence_no": inst.licence_no or "",
             "type": inst.type_label, "status": STATUSES[inst.status].split("（")[0],
             "district": inst.district or "", "address": inst.address or ""}
    for k in LIST_FIELDS:
        cells[k] = "；".join(getattr(inst, k))
    return [cells[f] for f in COLUMNS]


def export_headers() -> list[str]:
    return [canon for canon, _, _ in COLUMNS.values()]


# -- what links a site to its institution (store table institution_keys) ---------------------------
_NAME_NOISE = re.compile(r"[\s·•,，.。()（）\[\]【】\"“”'‘’\-—_]")


def host_key(url: str) -> str:
    """What two URLs of one site share: the host (and port), lower case, without ``www.``."""
    netloc = (urlsplit(url if "://" in url else "http://" + url).netloc or "").lower()
    return netloc.rsplit("@", 1)[-1].removeprefix("www.")


def name_key(name: str) -> str:
    return _NAME_NOISE.sub("", halfwidth(name or "")).lower()


def phone_key(phone: str) -> str:
    return re.sub(r"\D", "", phone or "")


def key_values(values: dict[str, Any]) -> set[tuple[str, str]]:
    """The lookup keys of an institution (its fields as ``Institution.values()`` gives them)."""
    keys = {("name", name_key(values["name"]))}
    if values.get("licence_no"):
        keys.add(("licence", licence_key(values["licence_no"])))
    keys |= {("host", host_key(u)) for u in values.get("sites") or ()}
    keys |= {("wechat", w.lower()) for w in values.get("wechat") or ()}
    keys |= {("mini_program", m.lower()) for m in values.get("mini_programs") or ()}
    keys |= {("phone", p) for p in map(phone_key, values.get("phones") or ()) if len(p) >= 7}
    return {k for k in keys if k[1]}
