"""detectors — the pure library that turns text (and image bytes, via OCR) into findings.

It owns the rule packs (YAML data files under ``detectors/rules/``), the rule engine that
matches them, text normalisation against evasion, the OCR engines, paragraph layout (lines of one
block read together, ``detectors.paragraphs``) and the precedent library with its matcher and the
``suspected`` tier (``detectors/precedents/``, ``detectors.precedents``). Nothing here touches the
network, a database or Scrapy: text in, findings out.
"""

from detectors.engine import Detector, default_detector, detect
from detectors.model import CATEGORIES, Finding

__all__ = ["CATEGORIES", "Detector", "Finding", "default_detector", "detect"]
