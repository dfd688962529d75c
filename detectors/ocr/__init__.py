"""OCR engines: image bytes in, lines of simplified-Chinese text with boxes out.

``load_engine(name, **settings)`` returns an :class:`OcrEngine`; engines are cached per
(name, settings), because loading the models is slow. The default engine runs PaddleOCR's PP-OCR
models through ``rapidocr`` + ``onnxruntime``, from the files that ship inside the rapidocr wheel
(nothing is downloaded at run time). ``paddleocr`` is an optional extra (``jianfu[paddle]``) that
runs Paddle-format models from local folders. See docs/ocr.md.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from detectors.ocr.model import Box, OcrEngineError, OcrLine, OcrUnavailable

__all__ = [
    "ENGINES",
    "Box",
    "OcrEngine",
    "OcrEngineError",
    "OcrLine",
    "OcrUnavailable",
    "load_engine",
]


@runtime_checkable
class OcrEngine(Protocol):
    """What every OCR engine offers.

    ``read(data)`` takes encoded image bytes (PNG, JPEG, GIF, WebP, ...; decoded safely, see
    ``detectors.images``) and returns lines in reading order, with boxes in that image's pixels
    and text converted to simplified Chinese.
    """

    name: str

    def read(self, data: bytes) -> list[OcrLine]: ...


def _rapidocr(**settings: Any) -> OcrEngine:
    from detectors.ocr.rapid import RapidOcrEngine

    return RapidOcrEngine(**settings)


def _paddleocr(**settings: Any) -> OcrEngine:
    from detectors.ocr.paddle import PaddleOcrEngine

    return PaddleOcrEngine(**settings)


ENGINES: dict[str, Callable[..., OcrEngine]] = {"rapidocr": _rapidocr, "paddleocr": _paddleocr}
_ALIASES = {"rapid": "rapidocr", "paddle": "paddleocr", "default": "rapidocr"}

_cache: dict[tuple, OcrEngine] = {}
_lock = threading.Lock()


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def load_engine(name: str = "rapidocr", *, cache: bool = True, **settings: Any) -> OcrEngine:
    """Return the OCR engine ``name`` configured with ``settings`` (engine-specific, see
    docs/ocr.md). The same (name, settings) returns the same engine object unless ``cache=False``.

    Raises :class:`OcrUnavailable` (one line saying how to install it) when the engine's package
    is missing, and :class:`OcrEngineError` for an unknown name or bad settings.
    """
    key_name = _ALIASES.get(name, name)
    if key_name not in ENGINES:
        raise OcrEngineError(f"unknown OCR engine {name!r}; choose one of: {', '.join(sorted(ENGINES))}")
    if not cache:
        return ENGINES[key_name](**settings)
    key = (key_name, _freeze(settings))
    with _lock:
        engine = _cache.get(key)
        if engine is None:
            engine = _cache[key] = ENGINES[key_name](**settings)
        return engine
