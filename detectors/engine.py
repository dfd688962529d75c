"""Rule engine v0: loads YAML rule packs and reports regex matches with spans.

(The full engine — automaton, context scoring, normalisation — grows here; the public surface
``Detector.detect(text) -> list[Finding]`` stays.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from detectors.model import CATEGORIES, SEVERITIES, Finding

RULES_DIR = Path(__file__).with_name("rules")


class RuleError(ValueError):
    """A rule pack is broken; the message names the file, the rule and the field."""


@dataclass(frozen=True)
class Rule:
    id: str
    category: str
    severity: str
    basis: str
    patterns: tuple[re.Pattern[str], ...]
    exclusions: tuple[re.Pattern[str], ...]
    score: float


def _compile(source: str, rule_id: str, fld: str, value: object) -> re.Pattern[str]:
    if not isinstance(value, str) or not value:
        raise RuleError(f"{source}: rule {rule_id!r}: field {fld!r}: expected a non-empty string")
    try:
        return re.compile(value)
    except re.error as e:
        raise RuleError(f"{source}: rule {rule_id!r}: field {fld!r}: bad regex {value!r}: {e}") from e


def load_rules(path: Path) -> list[Rule]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise RuleError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise RuleError(f"{path}: expected a mapping with a 'rules' list")
    rules = []
    for i, raw in enumerate(data["rules"]):
        rid = raw.get("id") if isinstance(raw, dict) else None
        if not isinstance(rid, str):
            raise RuleError(f"{path}: rule #{i}: field 'id': missing or not a string")
        cat = raw.get("category")
        if cat not in CATEGORIES:
            raise RuleError(f"{path}: rule {rid!r}: field 'category': {cat!r} is not one of {CATEGORIES}")
        sev = raw.get("severity", "medium")
        if sev not in SEVERITIES:
            raise RuleError(f"{path}: rule {rid!r}: field 'severity': {sev!r} is not one of {SEVERITIES}")
        basis = raw.get("basis")
        if not isinstance(basis, str) or not basis:
            raise RuleError(f"{path}: rule {rid!r}: field 'basis': missing")
        pats = raw.get("patterns")
        if not isinstance(pats, list) or not pats:
            raise RuleError(f"{path}: rule {rid!r}: field 'patterns': expected a non-empty list")
        rules.append(
            Rule(
                id=rid,
                category=cat,
                severity=sev,
                basis=basis,
                patterns=tuple(_compile(str(path), rid, "patterns", p) for p in pats),
                exclusions=tuple(_compile(str(path), rid, "exclusions", p) for p in raw.get("exclusions", [])),
                score=float(raw.get("score", 0.8)),
            )
        )
    return rules


class Detector:
    def __init__(self, rules_dir: Path = RULES_DIR) -> None:
        self.rules: list[Rule] = []
        for path in sorted(Path(rules_dir).glob("*.yaml")):
            self.rules.extend(load_rules(path))

    def detect(self, text: str) -> list[Finding]:
        out: list[Finding] = []
        for rule in self.rules:
            for pat in rule.patterns:
                for m in pat.finditer(text):
                    window = text[max(0, m.start() - 20) : m.end() + 20]
                    if any(x.search(window) for x in rule.exclusions):
                        continue
                    out.append(
                        Finding(
                            category=rule.category,
                            rule_id=rule.id,
                            text=m.group(0),
                            start=m.start(),
                            end=m.end(),
                            score=rule.score,
                            severity=rule.severity,
                            basis=rule.basis,
                            explanation=(f"pattern {pat.pattern!r} matched",),
                        )
                    )
        out.sort(key=lambda f: (f.start, f.end, f.rule_id))
        return out


@lru_cache(maxsize=1)
def default_detector() -> Detector:
    return Detector()


def detect(text: str) -> list[Finding]:
    return default_detector().detect(text)
