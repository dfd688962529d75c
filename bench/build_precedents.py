"""Build the precedent library shipped in the package (``detectors/precedents/cases.jsonl``) from
the TUNING part of the real corpora only (``bench.corpus``): the sealed part never enters it.

    .venv/bin/python -m bench.build_precedents

Each line is one real case: its text, what was decided (violation with its categories, or a
compliant text kept as a counter-example), the source, the authority that decided when the
source names one, and the source's note on the decision.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from bench import corpus

OUT = Path(__file__).resolve().parent.parent / "detectors" / "precedents" / "cases.jsonl"

# who decided: an education or market-regulation authority (or a court) named in the title or note
_AUTHORITY = re.compile(
    r"((?:国家|[\u4e00-\u9fff]{1,8}?(?:省|市|区|县|自治区)){0,3}"
    r"(?:市场监督管理总局|市场监督管理局|市场监管局|市场监管总局|教育厅|教育局|教育委员会|教委|教育部|"
    r"“双减”工作专班办公室|人民法院|法院))")
_NOT_A_PLACE = re.compile(r"^(?:对|向|被|经|据|由|关于|发布|通报|根据|深入|开展|加强|县市场)")


_ENFORCED = re.compile(r"罚|通报|责令|查处|立案|警告|整改|认定|判决|判令|点名|约谈|取缔|停止|拆除|曝光")


def authority(*texts: str) -> str:
    """The authority that decided the case, when the source names one and says it acted."""
    if not any(_ENFORCED.search(t or "") for t in texts):
        return ""
    names = []
    for text in texts:
        for m in _AUTHORITY.finditer(text or ""):
            name = m.group(1)
            while _NOT_A_PLACE.match(name) and len(name) > 3:
                name = name[1:]
            if len(name) >= 3:
                names.append(name)
    return max(names, key=len, default="")


def case(set_name: str, record: corpus.Record) -> dict:
    key = f"{record.source_url}\x1f{record.text}".encode()
    kind = "v" if record.categories else "c"
    return {
        "id": f"{set_name}-{kind}-{hashlib.sha256(key).hexdigest()[:8]}",
        "verdict": "violation" if record.categories else "compliant",
        "categories": list(record.categories),
        "text": record.text,
        "source_url": record.source_url,
        "source_title": record.source_title,
        "authority": authority(record.source_title, record.note) if record.categories else "",
        "decision": record.note,
    }


def main() -> None:
    rows = []
    for name, violations, compliant in corpus.SETS:
        for filename in (violations, compliant):
            rows.extend(case(name, r) for r in corpus.tuning(filename))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(rows)} cases ({sum(r['verdict'] == 'violation' for r in rows)} violations) -> {OUT}")


if __name__ == "__main__":
    main()
