"""detectors — the pure library that turns text (and image bytes, via OCR) into findings.

It owns the rule packs (YAML data files under ``detectors/rules/``), the rule engine that
matches them, text normalisation against evasion, the OCR engines, paragraph layout (lines of one
block read together, ``detectors.paragraphs``), the precedent library with its matcher, and the
``suspected`` tier (``detectors/precedents/``, ``detectors.precedents``) with its second source, the
wording model trained on the project's labelled texts (``detectors/trained/``, ``detectors.wording``).
Nothing here touches the network, a database or Scrapy: text in, findings out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from detectors.model import CATEGORIES, Finding

if TYPE_CHECKING:
    from detectors.engine import Detector, default_detector, detect

__all__ = ["CATEGORIES", "Detector", "Finding", "default_detector", "detect"]

_ENGINE = ("Detector", "default_detector", "detect")


def __getattr__(name: str) -> Any:
    # the engine (numpy, YAML, the rule packs' code) is imported when first asked for, so a process
    # that only stores findings — a scan's crawl process, the web app — does not pay for it
    if name in _ENGINE:
        from detectors import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'detectors' has no attribute {name!r}")
