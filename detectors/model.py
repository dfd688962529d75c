"""The finding: what a detector reports, and the ten category ids other tools rely on."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

CATEGORIES: tuple[str, ...] = (
    "preschool_subject",
    "photo_search",
    "competition_ranking",
    "advance_teaching",
    "off_hours_schedule",
    "prepaid_fees",
    "teacher_qualification",
    "guarantee_promise",
    "false_claim",
    "unlicensed_subject",
)

SEVERITIES: tuple[str, ...] = ("low", "medium", "high")


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule firing on one span of the input text.

    ``start``/``end`` are offsets into the *original* input (not the normalised text), so
    ``input[start:end] == text`` always holds. ``explanation`` (why it fired, step by step) and
    ``title`` are Simplified Chinese: they go into official reports.
    """

    category: str
    rule_id: str
    text: str
    start: int
    end: int
    score: float
    severity: str
    basis: str
    explanation: tuple[str, ...] = field(default=())
    title: str = ""  # the rule's Chinese title (what the finding is, in one line for a report)
    tier: str = "rule"  # rule | suspected (疑似: no rule fired, close to a precedent; detectors.precedents)
    precedent: str = ""  # the closest precedent, cited in Chinese

    def to_dict(self, explain: bool = True) -> dict:
        d = asdict(self)
        d["explanation"] = list(self.explanation)
        if not explain:
            d.pop("explanation")
        return d
