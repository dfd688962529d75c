"""Intake: material sent in by people rather than found by a crawl.

Owns ``jianfu check`` (check a screenshot, a phone photo of a poster, a PDF brochure, a saved web
page or a link now: OCR, detect, keep the original bytes as evidence) and tips (举报: where a tip
came from, what it reported, what came of it, the cases it led to; ``jianfu tips``). Uploads are
inspected before anything reads them (``intake.uploads``); photos are straightened
(``intake.photo``); PDFs and saved pages are opened page by page (``intake.documents``); the checks
themselves are in ``intake.check``. SQL is in ``store/intake.py``.
"""
