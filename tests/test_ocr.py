"""Real OCR on generated ad images (rapidocr default engine; paddleocr when the extra is installed).

One engine per module (loading is slow); a handful of images only — the 60+ image set is in
bench/bench_ocr.py.
"""

from __future__ import annotations

import importlib.util
import io
import random
from pathlib import Path

import pytest
from PIL import Image

from bench.bench_ocr import edit_distance
from demo_site import adgen
from detectors.images import ImageRejected, image_findings, read_image
from detectors.ocr import OcrEngine, OcrEngineError, OcrUnavailable, load_engine


def cer(truth: str, got: str) -> float:
    """Character error rate: Levenshtein distance / len(truth), ignoring spaces."""
    a, b = truth.replace(" ", ""), got.replace(" ", "")
    return edit_distance(a, b) / max(1, len(a))


def overlaps(box, rect) -> bool:
    xs, ys = [p[0] for p in box], [p[1] for p in box]
    left, top, right, bottom = rect
    return min(xs) < right and max(xs) > left and min(ys) < bottom and max(ys) > top


@pytest.fixture(scope="module")
def engine():
    return load_engine("rapidocr")


def test_engine_is_cached_offline_and_follows_the_protocol(engine):
    assert isinstance(engine, OcrEngine)
    assert load_engine("rapidocr") is engine
    assert load_engine() is engine
    import rapidocr

    from detectors.ocr.int8 import int8_path
    from detectors.ocr.rapid import RapidOcrEngine

    wheel = Path(rapidocr.__file__).parent
    assert set(engine.models) == {"det", "rec"}  # use_cls=False for banners
    # the int8 copies `make install` builds from the wheel's models (never a download)
    fp32 = RapidOcrEngine.default_models()
    assert engine.int8 == ["det", "rec"] and engine.name.count(".int8") == 2, engine.name
    for task, path in engine.models.items():
        assert Path(fp32[task]).is_file() and Path(fp32[task]).is_relative_to(wheel)
        assert Path(path).is_file() and Path(path) == int8_path(fp32[task])
    assert engine.params["Det.limit_type"] == "max" and engine.params["Det.limit_side_len"] == 512


def test_int8_models_read_what_the_fp32_models_read(engine):
    import rapidocr

    fp32 = load_engine("rapidocr", int8=False)
    assert fp32.int8 == [] and ".int8" not in fp32.name
    assert all(Path(p).is_relative_to(Path(rapidocr.__file__).parent) for p in fp32.models.values())
    rng = random.Random(7)  # neither the calibration's nor the benchmark's images
    ads = [adgen.clean_banner(rng, 2) for _ in range(4)] + [adgen.busy_poster(rng, 4) for _ in range(3)]
    edits = {"int8": 0, "fp32": 0}
    for ad in ads:
        readings = {"int8": read_image(ad.data, engine), "fp32": read_image(ad.data, fp32)}
        for name, reading in readings.items():
            edits[name] += round(cer(ad.text, reading.text) * len(ad.text.replace(" ", "")))
        assert ({(f.rule_id, f.text) for f, _ in image_findings(readings["int8"])}
                == {(f.rule_id, f.text) for f, _ in image_findings(readings["fp32"])}), ad.text
    assert edits["int8"] <= edits["fp32"] + 1, edits


def test_submissions_are_read_with_the_fp32_models(engine, tmp_path):
    """Phone photos are where int8 loses accuracy (bench check): jianfu check reads at fp32, a scan
    reads web images with the default (int8) engine."""
    from intake.check import Checker
    from store import Store

    assert engine.int8 and ".int8" in engine.name
    with Checker(Store(tmp_path / "store")) as checker:
        assert checker.engine.int8 == [] and ".int8" not in checker.engine.name


def test_without_int8_copies_the_fp32_models_run(tmp_path, monkeypatch, caplog):
    from detectors.ocr.int8 import RECIPE, int8_path

    monkeypatch.setenv("JIANFU_MODEL_CACHE", str(tmp_path))  # nothing built there
    with caplog.at_level("WARNING"):
        plain = load_engine("rapidocr", cache=False)
    assert plain.int8 == [] and ".int8" not in plain.name
    assert "python -m detectors.ocr.int8" in caplog.text
    # an int8 file is named after its source's content and the recipe: never a stale copy
    model = tmp_path / "m.onnx"
    model.write_bytes(b"one")
    first = int8_path(model)
    model.write_bytes(b"two")
    assert first != int8_path(model) and first.parent == tmp_path
    assert first.name.startswith("m.int8-") and first.name.endswith(f"-{RECIPE}.onnx")


def test_int8_build_is_a_no_op_once_built(engine, capsys):
    from detectors.ocr import int8

    assert int8.main([]) == 0  # what `make install` runs: the models are there, nothing is rebuilt
    assert capsys.readouterr().out.splitlines() == [f"{task}: {engine.models[task]}" for task in int8.TASKS]


def test_int8_rewrites_after_quantising_are_exact(tmp_path):
    """The two rewrites the int8 recipe makes after quantising (detectors.ocr.int8._finish), on a
    small recogniser-like head quantised the same way: the MatMul + bias becomes one
    MatMulIntegerToFloat and the output Softmax is dropped; the scores that come out, put through
    a Softmax, are what the quantised model gave, and its metadata says they are scores."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from detectors.ocr.int8 import _finish
    from detectors.ocr.rapid import REC_OUTPUT_KEY

    rng = np.random.default_rng(18)
    weight = numpy_helper.from_array(rng.normal(size=(16, 40)).astype(np.float32), "w")
    bias = numpy_helper.from_array(rng.normal(size=(40,)).astype(np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Add", ["y", "b"], ["z"]),
         helper.make_node("Softmax", ["z"], ["probs"], axis=2)],
        "head", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 12, 16])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 12, 40])], [weight, bias])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "f.onnx")
    inputs = [rng.normal(size=(1, 12, 16)).astype(np.float32) for _ in range(8)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(inputs)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"x": x}

    quantize_static(str(tmp_path / "f.onnx"), str(tmp_path / "q.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=["MatMul"], activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, per_channel=True,
                    extra_options={"OpTypesToExcludeOutputQuantization": ["MatMul"]})
    (tmp_path / "r.onnx").write_bytes((tmp_path / "q.onnx").read_bytes())
    _finish(tmp_path / "r.onnx")

    rewritten = onnx.load(str(tmp_path / "r.onnx"))
    ops = [n.op_type for n in rewritten.graph.node]
    assert "MatMulIntegerToFloat" in ops and not {"MatMul", "Add", "Softmax"} & set(ops), ops
    before = ort.InferenceSession(str(tmp_path / "q.onnx"), providers=["CPUExecutionProvider"])
    after = ort.InferenceSession(str(tmp_path / "r.onnx"), providers=["CPUExecutionProvider"])
    assert after.get_modelmeta().custom_metadata_map.get(REC_OUTPUT_KEY) == "logits"
    x = rng.normal(size=(1, 12, 16)).astype(np.float32)
    probs, = before.run(None, {"x": x})
    scores, = after.run(None, {"x": x})
    softmax = np.exp(scores - scores.max(axis=2, keepdims=True))
    softmax /= softmax.sum(axis=2, keepdims=True)
    assert np.allclose(softmax, probs, atol=1e-6) and (scores.argmax(2) == probs.argmax(2)).all()


def test_the_engine_decodes_scores_as_rapidocr_decodes_probabilities(engine):
    """The default engine's int8 recogniser outputs scores before Softmax; its decoder gives the
    text and the probabilities rapidocr's own decoder gives on the Softmax of those scores."""
    import numpy as np
    from rapidocr.ch_ppocr_rec.utils import CTCLabelDecode

    ours = engine._ocr.text_rec.postprocess_op
    assert type(ours) is not CTCLabelDecode  # the int8 model says its output is scores
    theirs = CTCLabelDecode(character=list(ours.character[1:-1]))
    assert theirs.character == ours.character
    rng = np.random.default_rng(5)
    classes = len(ours.character)
    scores = rng.normal(size=(2, 30, classes)).astype(np.float32)
    best = rng.integers(0, 40, size=(2, 30))  # blanks, repeats and characters
    scores[np.arange(2)[:, None], np.arange(30)[None, :], best] += 12
    probs = np.exp(scores - scores.max(axis=2, keepdims=True))
    probs /= probs.sum(axis=2, keepdims=True)
    mine, _ = ours(scores, wh_ratio_list=[1.0, 1.0], max_wh_ratio=1.0)
    want, _ = theirs(probs, wh_ratio_list=[1.0, 1.0], max_wh_ratio=1.0)
    assert [t for t, _ in mine] == [t for t, _ in want] and all(t for t, _ in mine)
    assert np.allclose([c for _, c in mine], [c for _, c in want], atol=1e-4)


def test_detector_input_from_the_table_is_rapidocrs_bit_for_bit(engine):
    import numpy as np
    from rapidocr.ch_ppocr_det.utils import DetPreProcess

    det = engine._ocr.text_det
    image = np.random.default_rng(3).integers(0, 256, size=(301, 1203, 3), dtype=np.uint8)
    ours = det.get_preprocess()(image)
    theirs = DetPreProcess(det.limit_side_len, det.limit_type, det.mean, det.std)(image)
    assert type(det.get_preprocess()) is not DetPreProcess
    assert ours.dtype == theirs.dtype == np.float32 and ours.shape == theirs.shape == (1, 3, 128, 512)
    assert np.array_equal(ours, theirs)


def test_heap_growth_is_capped(engine):
    import platform

    from detectors.ocr.rapid import HEAP_MMAP_THRESHOLD, cap_heap_growth

    if platform.libc_ver()[0] == "glibc":  # large buffers are mmap'ed: RSS stops growing with shapes
        assert engine.heap_capped and cap_heap_growth(HEAP_MMAP_THRESHOLD)
    assert cap_heap_growth(None) is False


def test_missing_model_is_an_error_not_a_download(tmp_path):
    with pytest.raises(OcrEngineError, match="never downloads"):
        load_engine("rapidocr", cache=False, **{"Det.model_type": "tiny"})
    with pytest.raises(OcrEngineError, match="never downloads"):
        load_engine("rapidocr", cache=False, det_model_path=str(tmp_path / "nope.onnx"))
    with pytest.raises(OcrEngineError, match="unknown OCR engine"):
        load_engine("tesseract")
    with pytest.raises(OcrEngineError, match="unknown setting"):
        load_engine("rapidocr", cache=False, limit_sidelen=5)


def test_banner_read_and_preschool_finding_boxed(engine):
    ad = adgen.render(["幼小衔接拼音班火热招生", "咨询电话 010-62345678"], size=(1200, 300), font_size=56,
                      style="gradient", seed=3)
    reading = read_image(ad.data, engine)
    assert (reading.width, reading.height, reading.format) == (1200, 300, "png")
    assert cer(ad.text, reading.text) <= 0.02, reading.text
    assert all(0.5 <= ln.confidence <= 1 for ln in reading.lines)
    found = image_findings(reading)
    pre = [(f, boxes) for f, boxes in found if f.category == "preschool_subject"]
    assert pre, found
    finding, boxes = pre[0]
    assert finding.text == "幼小衔接" and reading.text[finding.start:finding.end] == "幼小衔接"
    drawn = ad.boxes[0]
    assert boxes and overlaps(boxes[0], drawn)
    # the sub-box covers about the first 4 of 11 characters of the drawn line
    xs = [p[0] for p in boxes[0]]
    quarter = drawn[0] + (drawn[2] - drawn[0]) * 4 / 11
    assert abs(max(xs) - quarter) < 0.1 * (drawn[2] - drawn[0])


def test_busy_jpeg_poster_with_qr(engine):
    ad = adgen.busy_poster(random.Random(11), n_lines=4)
    ad = adgen.render(ad.lines, font_size=40, style="busy", fmt="JPEG", quality=70, seed=11,
                      qr="https://example.org/signup?id=7", mixed_fonts=True)
    reading = read_image(ad.data, engine)
    assert reading.format == "jpeg"
    assert reading.qr == ["https://example.org/signup?id=7"]
    assert cer(ad.text, reading.text) <= 0.05, (ad.text, reading.text)


def test_traditional_text_comes_out_simplified(engine):
    ad = adgen.render(["希望杯競賽金牌教練", "學前班報名熱線"], size=(900, 260), font_size=56, traditional=True)
    reading = read_image(ad.data, engine)
    assert cer("希望杯竞赛金牌教练\n学前班报名热线", reading.text) <= 0.1, reading.text
    cats = {f.category for f, _ in image_findings(reading)}
    assert {"competition_ranking", "preschool_subject"} <= cats


def test_long_image_text_at_bottom_mapped_back(engine):
    ad = adgen.long_image("学前班识字数学同步开课", width=750, height=20000)
    reading = read_image(ad.data, engine)
    assert reading.height == 20000
    assert cer(ad.lines[0], reading.text) <= 0.1, reading.text
    (line,) = reading.lines  # once, although near a tile edge; nothing invented in the bands
    assert overlaps(line.box, ad.boxes[0])
    assert abs(line.bbox[1] - ad.boxes[0][1]) < 15
    found = image_findings(reading)
    assert found and overlaps(found[0][1][0], ad.boxes[0])


def test_animated_gif_reads_first_frame(engine):
    ad = adgen.animated_gif(["拍照搜题一秒出答案", "第二帧不同的字"])
    reading = read_image(ad.data, engine)
    assert reading.animated and cer(ad.lines[0], reading.text) <= 0.1, reading.text


def test_engine_read_bytes_and_rejections(engine):
    ad = adgen.render(["不达目标全额退款"], size=(800, 200), font_size=56)
    lines = engine.read(ad.data)
    assert [ln.text for ln in lines] == ["不达目标全额退款"]
    with pytest.raises(ImageRejected):
        engine.read(b"<html>404</html>")
    one = io.BytesIO()
    Image.new("RGB", (1, 1)).save(one, "GIF")
    with pytest.raises(ImageRejected):
        read_image(one.getvalue(), engine)


# -- paddleocr (optional extra; CI installs it) -----------------------------------------------

HAVE_PADDLE = importlib.util.find_spec("paddleocr") is not None and importlib.util.find_spec("paddle") is not None


def test_missing_paddle_gives_one_line_install_hint(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("paddleocr", "paddle") else real(name, *a))
    with pytest.raises(OcrUnavailable) as e:
        load_engine("paddleocr", cache=False)
    msg = str(e.value)
    assert "\n" not in msg and "pip install 'jianfu[paddle]'" in msg


@pytest.mark.skipif(not HAVE_PADDLE, reason="paddle extra not installed: pip install -e '.[paddle]'")
def test_paddleocr_offline_from_local_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("JIANFU_MODEL_CACHE", str(tmp_path / "models"))
    paddle_engine = load_engine("paddleocr", cache=False)
    assert paddle_engine.name == "paddleocr:PP-OCRv4_mobile_det+PP-OCRv4_mobile_rec"
    for folder in paddle_engine.models.values():
        assert (Path(folder) / "inference.yml").is_file()
    ad = adgen.render(["幼小衔接拼音班火热招生"], size=(1000, 240), font_size=56)
    reading = read_image(ad.data, paddle_engine)
    assert cer(ad.text, reading.text) <= 0.05, reading.text
    found = image_findings(reading)
    assert found and found[0][0].category == "preschool_subject" and overlaps(found[0][1][0], ad.boxes[0])
    # a user's own folder (here: the prepared one, which has its inference.yml) is used as is
    again = load_engine("paddleocr", cache=False, det_model_dir=paddle_engine.models["det"],
                        rec_model_dir=paddle_engine.models["rec"])
    assert again.models == paddle_engine.models
