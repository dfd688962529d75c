"""The default OCR engine: PaddleOCR's PP-OCR models (ONNX) run by ``rapidocr`` + ``onnxruntime``.

The det/rec models ship inside the rapidocr wheel. Before loading, every model path is resolved
to a local file and a missing one is an error: rapidocr would otherwise try to download it. By
default the engine runs the int8 copies of the wheel's det/rec models that ``make install`` builds
(``detectors.ocr.int8``), and the wheel's fp32 models when there are none.
"""

from __future__ import annotations

import logging
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from detectors.ocr.model import OcrEngineError, OcrLine, OcrUnavailable, make_box, to_simplified

# Tuned for ad banners (wide, short): see docs/ocr.md and bench/bench_ocr.py.
BANNER_DEFAULTS: dict[str, Any] = {
    "Det.limit_type": "max",
    "Det.limit_side_len": 512,  # 960 → 512: detector ~4× faster on banners, CER unchanged (bench)
    "Global.use_cls": False,
    "Global.log_level": "error",  # not "warning": it logs every image without text
    "EngineConfig.onnxruntime.intra_op_num_threads": 1,
    "EngineConfig.onnxruntime.inter_op_num_threads": 1,
    # onnxruntime's own arena for tensors: the detector's feature maps (a different size for
    # every input shape) are reused from it instead of going through malloc each run. About 2×
    # faster than per-tensor malloc with the heap cap below, and it stays bounded (bench_ocr).
    "EngineConfig.onnxruntime.enable_cpu_mem_arena": True,
    # One text line per recogniser run, at its own width: a batch pads every line to the widest
    # one in it (and to at least 320 px). Busy posters ~15 % faster, peak memory 376 → 290 MB, same
    # text (bench_ocr, issue 18).
    "Rec.rec_batch_num": 1,
}

log = logging.getLogger(__name__)

# metadata key of a recogniser whose output is the scores before Softmax (detectors.ocr.int8)
REC_OUTPUT_KEY = "jianfu_rec_output"

# friendly name -> rapidocr dotted parameter
FRIENDLY: dict[str, str] = {
    "threads": "EngineConfig.onnxruntime.intra_op_num_threads",
    "limit_type": "Det.limit_type",
    "limit_side_len": "Det.limit_side_len",
    "use_cls": "Global.use_cls",
    "text_score": "Global.text_score",
    "box_thresh": "Det.box_thresh",
    "unclip_ratio": "Det.unclip_ratio",
    "rec_batch_num": "Rec.rec_batch_num",
    "cpu_mem_arena": "EngineConfig.onnxruntime.enable_cpu_mem_arena",
    "det_model_path": "Det.model_path",
    "rec_model_path": "Rec.model_path",
    "rec_keys_path": "Rec.rec_keys_path",
    "cls_model_path": "Cls.model_path",
    "model_root_dir": "Global.model_root_dir",
    "log_level": "Global.log_level",
}


# Large buffers outside onnxruntime's arena (decoded images, numpy pre-processing, a different size
# for every input shape) are mmap'ed and returned to the system when freed, instead of fragmenting
# glibc's heap: without this the OCR process grows by ~200 MB over the first 60 ad images
# (bench/bench_ocr.py). Tensors inside a model run come from onnxruntime's arena (BANNER_DEFAULTS):
# served by mmap one by one, they cost half of the OCR time in page faults. 4 MB, not 64 KB (issue
# 18): a banner's or poster's pre-processing buffers (its BGR copy, the detector input in float32,
# line crops) are then reused from the heap instead of page-faulted in afresh for each image
# (~8 % of a banner's time: as fast as no cap at all), while the big ones (tiles of long images)
# are still returned; peak memory stays flat over passes of the bench set (~295 MB).
HEAP_MMAP_THRESHOLD = 4 * 1024 * 1024
# Fixing the mmap threshold also stops glibc from raising its trim threshold with it, which stays at
# 128 KB: the heap's top, freed at the end of every image, was handed back to the system and
# page-faulted in again for the next one (~5 ms of a 50 ms banner in the bench's fresh process).
# Up to 16 MB of free heap are kept instead (a poster's pre-processing buffers); peak memory +2 MB.
HEAP_TRIM_THRESHOLD = 16 * 1024 * 1024
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
_heap_capped: int | None = None


def cap_heap_growth(threshold: int | None = HEAP_MMAP_THRESHOLD) -> bool:
    """Serve allocations of ``threshold`` bytes or more with mmap (glibc ``mallopt``; fixing the
    threshold also stops glibc from raising it after the first large free) and keep up to
    :data:`HEAP_TRIM_THRESHOLD` of free heap. Process-wide; a no-op (False) on other C libraries
    or when ``threshold`` is None."""
    global _heap_capped
    if threshold is None:
        return False
    if _heap_capped is not None:
        return _heap_capped == threshold
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, int(threshold)))
        ok = ok and bool(libc.mallopt(_M_TRIM_THRESHOLD, max(HEAP_TRIM_THRESHOLD, int(threshold))))
    except (OSError, AttributeError):
        return False
    if ok:
        _heap_capped = int(threshold)
    return ok


def rapidocr_params(settings: dict[str, Any], defaults: bool = True) -> dict[str, Any]:
    """Merge ``settings`` (friendly names, dotted rapidocr names, or ``params={...}``) over the
    banner defaults into one rapidocr ``params`` dict."""
    params: dict[str, Any] = dict(BANNER_DEFAULTS) if defaults else {"Global.log_level": "error"}
    extra = settings.pop("params", None) or {}
    for key, value in {**settings, **extra}.items():
        if key in FRIENDLY:
            params[FRIENDLY[key]] = value
        elif "." in key:
            params[key] = value
        else:
            raise OcrEngineError(
                f"rapidocr: unknown setting {key!r}; use one of {sorted(FRIENDLY)} or a dotted "
                "rapidocr parameter such as 'Det.limit_side_len'"
            )
    if "threads" in settings and "EngineConfig.onnxruntime.inter_op_num_threads" not in params:
        params["EngineConfig.onnxruntime.inter_op_num_threads"] = 1
    return _enums(params)


def _enums(params: dict[str, Any]) -> dict[str, Any]:
    """rapidocr wants enum members for model_type, ocr_version, engine_type, lang_type; a
    configuration file has strings."""
    import rapidocr

    task_lang = {"Det": "LangDet", "Rec": "LangRec", "Cls": "LangCls"}
    out = {}
    for key, value in params.items():
        section, _, leaf = key.rpartition(".")
        enum_name = {"model_type": "ModelType", "ocr_version": "OCRVersion",
                     "engine_type": "EngineType"}.get(leaf)
        if leaf == "lang_type":
            enum_name = task_lang.get(section)
        if enum_name and isinstance(value, str):
            try:
                value = getattr(rapidocr, enum_name)(value)
            except ValueError as e:
                raise OcrEngineError(f"rapidocr: setting {key!r}: {e}") from e
        out[key] = value
    return out


class RapidOcrEngine:
    """``rapidocr`` + ``onnxruntime``. Settings: see :data:`FRIENDLY` and docs/ocr.md;
    ``defaults=False`` starts from rapidocr's own defaults instead of the banner tuning
    (the bench compares the two); ``to_simplified=False`` keeps the model's raw output;
    ``int8=False`` runs the wheel's fp32 det/rec models even when int8 copies were built."""

    def __init__(self, *, defaults: bool = True, to_simplified: bool = True, int8: bool = True,
                 heap_mmap_threshold: int | None = HEAP_MMAP_THRESHOLD, **settings: Any) -> None:
        try:
            from rapidocr import RapidOCR
        except ImportError as e:  # pragma: no cover - rapidocr is a core dependency
            raise OcrUnavailable(
                f"OCR engine 'rapidocr' needs rapidocr and onnxruntime: pip install 'rapidocr>=3,<4' "
                f"'onnxruntime>=1.18,<2' ({e})"
            ) from e
        self.params = rapidocr_params(dict(settings), defaults=defaults)
        self.heap_capped = cap_heap_growth(heap_mmap_threshold if defaults else None)
        self.to_simplified = to_simplified
        try:
            self._ocr = RapidOCR(params=self.params)
        except Exception as e:
            raise OcrEngineError(f"rapidocr: bad settings {self.params}: {e}") from e
        self.models = self._pin_local_models()
        self.int8 = self._use_int8_models() if int8 and defaults else []
        self.name = "rapidocr:" + "+".join(
            Path(p).stem.split(".int8-")[0] + (".int8" if task in self.int8 else "")
            for task, p in self.models.items())
        self._lock = threading.Lock()
        # Load the models now (slow, once) rather than on the first image.
        self._ocr._load_det_model()
        self._ocr._load_rec_model()
        if self._ocr.use_cls:
            self._ocr._load_cls_model()
        self._lean_det_input()
        self._decode_rec_logits()

    def _lean_det_input(self) -> None:
        """The detector's input through a lookup table: rapidocr keeps the mean/std as omegaconf
        lists (~3 ms of omegaconf attribute errors per image, and float64 arithmetic), then
        scales, subtracts, divides, transposes and copies the resized image in four passes. Each
        channel of a uint8 image has 256 possible values, so the same float32 arithmetic done once
        on those values gives a table, and one lookup per pixel writes the model's input in its
        layout: the same numbers, bit for bit (tests/test_ocr.py), ~0.6 ms less per banner."""
        det = getattr(self._ocr, "text_det", None)
        if det is None:
            return
        for attr in ("mean", "std"):
            value = getattr(det, attr, None)
            if value is not None:
                setattr(det, attr, np.array(list(value), dtype=np.float32))
        # rapidocr asks for a new preprocessor for every image (the size limit may change between
        # images: tiles are read at 960 px); the table depends on mean and std only: made once
        table_pre = _table_det_preprocess_class()
        table = table_pre.table_for(det.mean, det.std)
        det.get_preprocess = lambda: table_pre(det.limit_side_len, det.limit_type, det.mean, det.std, table=table)

    def _decode_rec_logits(self) -> None:
        """A recogniser built by :mod:`detectors.ocr.int8` ends before its Softmax (the model
        says so in its metadata): the class with the highest score is the same, and the
        probability rapidocr reports for it is computed here only for the time steps the CTC
        decoding keeps, not for all 18,710 classes at every step (~1 ms a text line)."""
        rec = getattr(self._ocr, "text_rec", None)
        session = getattr(getattr(rec, "session", None), "session", None)
        if session is None:
            return
        meta = session.get_modelmeta().custom_metadata_map
        if meta.get(REC_OUTPUT_KEY) == "logits":
            rec.postprocess_op = _ctc_logits_decoder(rec.postprocess_op)

    @staticmethod
    def default_models() -> dict[str, str]:
        """The wheel's model files the banner defaults use (nothing is loaded)."""
        from rapidocr import RapidOCR

        return _local_models(RapidOCR(params=rapidocr_params({})).cfg)

    def _use_int8_models(self) -> list[str]:
        """Swap the wheel's det/rec models for their int8 copies where those were built; return
        the tasks swapped. A model the user chose (``det_model_path`` ...) is left alone."""
        from detectors.ocr.int8 import TASKS, int8_path

        swapped = []
        for task in TASKS:
            path = self.models.get(task)
            if path is None or f"{task.capitalize()}.model_path" in self.params:
                continue
            quantised = int8_path(path)  # named after the source's content: never another model's copy
            if quantised.is_file():
                getattr(self._ocr.cfg, task.capitalize()).model_path = str(quantised)
                self.models[task] = str(quantised)
                swapped.append(task)
            elif path == self.default_models().get(task):  # only the wheel's defaults are built
                log.warning("OCR: no int8 copy of %s (%s); running the fp32 model — build it with "
                            "`python -m detectors.ocr.int8` (make install does)", path, quantised)
        return swapped

    def _pin_local_models(self) -> dict[str, str]:
        """Resolve each model rapidocr will use to a local file; refuse to download."""
        return _local_models(self._ocr.cfg)

    def read(self, data: bytes) -> list[OcrLine]:
        from detectors.images import engine_read

        return engine_read(self, data)

    def read_pil(self, image: Any, *, min_side_len: int | None = None) -> list[OcrLine]:
        """OCR an already-decoded RGB PIL image (no tiling; ``detectors.images`` tiles).
        ``min_side_len`` raises the detector's size limit for this image (tiles of long images
        are read at 960 px: their text is small relative to the tile)."""
        import cv2

        if image.mode != "RGB":
            image = image.convert("RGB")
        arr = cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR)  # rapidocr wants BGR, as OpenCV reads
        det = self._ocr.text_det
        with self._lock:
            limit = det.limit_side_len
            if min_side_len and limit < min_side_len:
                det.limit_side_len = min_side_len
            try:
                result = self._ocr(arr)
            finally:
                det.limit_side_len = limit
        boxes = getattr(result, "boxes", None)
        txts = getattr(result, "txts", None)
        if boxes is None or txts is None:
            return []
        scores = getattr(result, "scores", None) or [1.0] * len(txts)
        lines = []
        for box, txt, score in zip(boxes, txts, scores, strict=False):
            text = to_simplified(txt) if self.to_simplified else txt
            if text.strip():
                lines.append(OcrLine(text=text, box=make_box(box), confidence=round(float(score), 4)))
        return lines


def _local_models(cfg: Any) -> dict[str, str]:
    """Resolve each model rapidocr will use (its omegaconf ``cfg``) to a local file, written back
    into ``cfg``; refuse to download."""
    from rapidocr.inference_engine.base import FileInfo, InferSession

    root = Path(cfg.Global.model_root_dir)
    tasks = [("det", cfg.Det, cfg.Global.use_det), ("rec", cfg.Rec, cfg.Global.use_rec),
             ("cls", cfg.Cls, cfg.Global.use_cls)]
    models: dict[str, str] = {}
    for task, sub, used in tasks:
        if not used:
            continue
        if sub.get("model_path"):
            path = Path(sub.model_path)
        else:
            try:
                info = InferSession.get_model_url(
                    FileInfo(engine_type=sub.engine_type, ocr_version=sub.ocr_version,
                             task_type=sub.task_type, lang_type=sub.lang_type, model_type=sub.model_type)
                )
            except Exception as e:
                raise OcrEngineError(f"rapidocr: no {task} model for these settings: {e}") from e
            path = root / Path(str(info["model_dir"])).name
        if not path.is_file():
            raise OcrEngineError(
                f"rapidocr: {task} model file {path} is not on this machine and jianfu never "
                f"downloads models; set '{task}_model_path' to a local .onnx file (docs/ocr.md)"
            )
        sub.model_path = str(path)
        models[task] = str(path)
    return models


@lru_cache(maxsize=1)
def _table_det_preprocess_class() -> type:
    """rapidocr's ``DetPreProcess`` writing the normalised image through a 3 × 256 table (see
    ``RapidOcrEngine._lean_det_input``); the class is made once (rapidocr is imported lazily)."""
    from rapidocr.ch_ppocr_det.utils import DetPreProcess

    class TableDetPreProcess(DetPreProcess):
        def __init__(self, *args: Any, table: np.ndarray, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.table = table

        @staticmethod
        def table_for(mean: Any, std: Any) -> np.ndarray:
            """rapidocr's own arithmetic (``normalize``) applied to every possible channel value."""
            values = np.arange(256, dtype=np.uint8).reshape(256, 1, 1).repeat(3, axis=2)
            return np.ascontiguousarray(DetPreProcess(mean=mean, std=std).normalize(values)[:, 0, :].T
                                        .astype(np.float32))

        def __call__(self, img: np.ndarray) -> np.ndarray | None:
            resized = self.resize(img)
            if resized is None or resized.dtype != np.uint8 or resized.ndim != 3 or resized.shape[2] != 3:
                return super().__call__(img)
            out = np.empty((1, 3, *resized.shape[:2]), dtype=np.float32)
            for channel in range(3):
                np.take(self.table[channel], resized[..., channel], out=out[0, channel])
            return out

    return TableDetPreProcess


def _ctc_logits_decoder(decoder: Any) -> Any:
    """rapidocr's CTC decoder (``decoder``: its character list) for a model that outputs scores
    before Softmax: the best class is the same; its probability, 1 / Σ exp(score − best score),
    is computed for the kept time steps only (the others are not read)."""
    from rapidocr.ch_ppocr_rec.utils import CTCLabelDecode

    class CtcLogitsDecode(CTCLabelDecode):
        def __call__(self, preds: np.ndarray, return_word_box: bool = False, **kwargs: Any) -> Any:
            best = preds.argmax(axis=2)
            keep = np.ones(best.shape, dtype=bool)
            keep[:, 1:] = best[:, 1:] != best[:, :-1]
            for token in self.get_ignored_tokens():
                keep &= best != token
            prob = np.zeros(best.shape, dtype=np.float32)
            rows, steps = np.nonzero(keep)
            if len(rows):
                scores = preds[rows, steps]  # (kept steps, classes)
                top = scores[np.arange(len(rows)), best[rows, steps]]
                prob[rows, steps] = 1.0 / np.exp(scores - top[:, None]).sum(axis=1)
            return self.decode(best, prob, return_word_box, kwargs.get("wh_ratio_list", (1.0,)),
                               kwargs.get("max_wh_ratio", 1.0), remove_duplicate=True)

    return CtcLogitsDecode(character=list(decoder.character[1:-1]))
